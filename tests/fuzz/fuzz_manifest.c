/*
 * fuzz_manifest: the vendor manifest formats (certs-pem, csv; the first
 * byte picks one, jsonl too) on arbitrary bytes, through the file reader a
 * task uses. Checked beyond "no crash, no leak":
 * - records keep the invariants of fuzz_jsonl (growing lines and
 *   boundaries inside the input; params an object of strings; a reason
 *   for every malformed record);
 * - resuming is exact: a reader opened at the boundary after record k
 *   yields exactly the records that followed k in the full read, which is
 *   what makes a bulk task restartable after a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/manifest.h"

#define MAX_RECS 512

struct rec {
	int step;
	int64_t line, end_offset, end_line;
	char *params; /* compact JSON text, or NULL */
};

struct list {
	struct rec r[MAX_RECS];
	int n;
	size_t len;
	int64_t lines;
};

static void add(struct list *l, const struct manifest_record *m)
{
	const char *k;
	json_t *v;

	if (m->end_offset > (int64_t)l->len || m->end_line > l->lines || m->line > l->lines + 1)
		abort();
	if (l->n > 0 && (m->line <= l->r[l->n - 1].line ||
	                 m->end_offset <= l->r[l->n - 1].end_offset))
		abort();
	if (m->step == MANIFEST_RECORD) {
		if (!json_is_object(m->params))
			abort();
		json_object_foreach(m->params, k, v)
			if (!json_is_string(v))
				abort();
	} else if (m->step != MANIFEST_BAD || m->reason[0] == '\0') {
		abort();
	}
	if (l->n == MAX_RECS)
		return;
	l->r[l->n].step = m->step;
	l->r[l->n].line = m->line;
	l->r[l->n].end_offset = m->end_offset;
	l->r[l->n].end_line = m->end_line;
	l->r[l->n].params =
		m->params != NULL ? json_dumps(m->params, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	l->n++;
}

static void clear(struct list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->r[i].params);
	l->n = 0;
}

/* Reads path from a boundary into l. Returns the open's code. */
static iotp_rc read_from(const char *path, const struct manifest_format *fmt, int64_t off,
                         int64_t line, struct list *l)
{
	struct manifest_file *mf = NULL;
	struct iotp_err err;
	iotp_rc rc = manifest_file_open(path, fmt, off, line, &mf, &err);

	if (rc != IOTP_OK)
		return rc;
	for (;;) {
		struct manifest_record m;
		int done = 0;

		memset(&m, 0, sizeof(m));
		if (manifest_file_next(mf, &m, &done, &err) != IOTP_OK)
			abort();
		if (done)
			break;
		add(l, &m);
		json_decref(m.params);
	}
	manifest_file_close(mf);
	return IOTP_OK;
}

static char path[64];

static void remove_tmp(void)
{
	if (path[0] != '\0')
		unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct manifest_format *const fmts[] = {&manifest_certs_pem, &manifest_csv,
	                                                     &manifest_jsonl};
	static struct list all, tail;
	const struct manifest_format *fmt;
	FILE *f;
	int k;

	if (size < 2)
		return 0;
	fmt = fmts[data[0] % 3];
	k = data[1];
	data += 2;
	size -= 2;
	if (path[0] == '\0') {
		snprintf(path, sizeof(path), "/tmp/fuzz_manifest.%ld", (long)getpid());
		atexit(remove_tmp);
	}
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	memset(&all, 0, sizeof(all));
	all.len = tail.len = size;
	all.lines = 0;
	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n')
			all.lines++;
	tail.lines = all.lines;
	if (read_from(path, fmt, 0, 0, &all) == IOTP_OK && all.n > 0 && all.n < MAX_RECS) {
		int at = k % all.n;

		tail.n = 0;
		if (read_from(path, fmt, all.r[at].end_offset, all.r[at].end_line, &tail) != IOTP_OK)
			abort();
		if (tail.n != all.n - at - 1)
			abort();
		for (int i = 0; i < tail.n; i++) {
			const struct rec *a = &all.r[at + 1 + i], *b = &tail.r[i];

			if (a->step != b->step || a->line != b->line || a->end_offset != b->end_offset ||
			    (a->params == NULL) != (b->params == NULL) ||
			    (a->params != NULL && strcmp(a->params, b->params) != 0))
				abort();
		}
		clear(&tail);
	}
	clear(&all);
	return 0;
}
