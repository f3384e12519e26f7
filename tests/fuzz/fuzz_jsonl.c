/*
 * fuzz_jsonl: the JSON-lines reader of bulk registration (the input of
 * StartThingRegistrationTask) on arbitrary bytes. Beyond "no crash, no
 * leak", every record must hold what the task runner relies on: line
 * numbers that only grow and stay within the input's lines, boundaries
 * (end offsets) that only grow and stay within the input, a parameter
 * object of strings for a record, and a reason for a malformed one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/manifest.h"

struct state {
	int64_t last_line;
	int64_t last_end;
	int64_t lines;   /* line breaks in the input */
	size_t len;
};

static void check(void *ud, const struct manifest_record *rec)
{
	struct state *s = ud;
	const char *k;
	json_t *v;

	if (rec->line <= s->last_line || rec->line > s->lines + 1)
		abort();
	if (rec->end_offset <= s->last_end || rec->end_offset > (int64_t)s->len ||
	    rec->end_line > s->lines)
		abort();
	s->last_line = rec->line;
	s->last_end = rec->end_offset;
	if (rec->step == MANIFEST_RECORD) {
		if (!json_is_object(rec->params))
			abort();
		json_object_foreach(rec->params, k, v)
			if (!json_is_string(v))
				abort();
	} else if (rec->step != MANIFEST_BAD || rec->reason[0] == '\0' || rec->params != NULL) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state s = {0, 0, 0, size};
	struct iotp_err err;

	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n')
			s.lines++;
	if (manifest_parse_buffer(&manifest_jsonl, (const char *)data, size, check, &s, &err) !=
	    IOTP_OK)
		abort(); /* jsonl has no header that could be refused */
	return 0;
}
