/*
 * The jsonl manifest format: one JSON object of string values per line, the
 * input of StartThingRegistrationTask (see manifest.h). A line that is not
 * such an object is a malformed record with the parser's reason; blank
 * lines are skipped; a trailing "\r" is tolerated.
 */
#include <stdio.h>
#include <string.h>

#include "core/manifest.h"

static iotp_rc jsonl_open(const char *data, size_t len, int eof, void **state,
                          size_t *head_bytes, int64_t *head_lines, enum manifest_step *step,
                          struct iotp_err *err)
{
	(void)data;
	(void)len;
	(void)eof;
	(void)err;
	*state = NULL;
	*head_bytes = 0;
	*head_lines = 0;
	*step = MANIFEST_RECORD;
	return IOTP_OK;
}

static int blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

static iotp_rc jsonl_next(void *state, const char *data, size_t len, int eof,
                          struct manifest_item *out, struct iotp_err *err)
{
	size_t l = manifest_line_len(data, len);
	json_error_t jerr;
	json_t *obj;
	const char *k;
	json_t *v;

	(void)state;
	(void)err;
	if (l == len && !eof) {
		out->step = MANIFEST_MORE;
		return IOTP_OK;
	}
	out->used = l < len ? l + 1 : l;
	out->lines = l < len ? 1 : 0;
	if (blank(data, l)) {
		out->step = MANIFEST_SKIP;
		return IOTP_OK;
	}
	out->step = MANIFEST_BAD;
	obj = json_loadb(data, l, JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL) {
		snprintf(out->reason, sizeof(out->reason), "not a JSON object: %s (column %d)",
		         jerr.text, jerr.column);
		return IOTP_OK;
	}
	if (!json_is_object(obj)) {
		snprintf(out->reason, sizeof(out->reason),
		         "the line must be a JSON object of parameters");
		json_decref(obj);
		return IOTP_OK;
	}
	json_object_foreach(obj, k, v) {
		if (!json_is_string(v)) {
			snprintf(out->reason, sizeof(out->reason),
			         "parameter '%.64s' must be a string", k);
			json_decref(obj);
			return IOTP_OK;
		}
	}
	out->step = MANIFEST_RECORD;
	out->params = obj;
	return IOTP_OK;
}

static void jsonl_close(void *state)
{
	(void)state;
}

const struct manifest_format manifest_jsonl = {
	"jsonl",
	jsonl_open,
	jsonl_next,
	jsonl_close,
};
