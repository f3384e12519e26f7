/*
 * The csv manifest format (RFC 4180, see manifest.h): the header row names
 * the template parameters, each further row gives one device's values.
 * Quoted fields may hold commas, doubled quotes and line breaks; "\r\n" and
 * "\n" both end a row. A row with another number of fields than the header,
 * or with a stray quote, is a malformed record; reading goes on at the
 * next line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "core/manifest.h"

#define CSV_MAX_COLUMNS 256

struct csv_state {
	char *names[CSV_MAX_COLUMNS];
	size_t ncols;
};

struct csv_row {
	char *fields[CSV_MAX_COLUMNS];
	size_t n;
};

static void row_cleanup(struct csv_row *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->fields[i]);
	r->n = 0;
}

enum row_result { ROW_OK, ROW_MORE, ROW_BAD, ROW_NOMEM };

/* Parses one row at data. On ROW_OK and ROW_BAD, *used and *lines say what
 * it occupies (for ROW_BAD: up to the next line break). */
static enum row_result parse_row(const char *data, size_t len, int eof, struct csv_row *row,
                                 size_t *used, int64_t *lines, char *reason, size_t rsize)
{
	struct buf field;
	size_t i = 0;
	int64_t nl = 0;
	enum row_result res = ROW_OK;

	buf_init(&field, MANIFEST_RECORD_MAX);
	row->n = 0;
	for (;;) {
		int quoted = 0;

		buf_cleanup(&field);
		buf_init(&field, MANIFEST_RECORD_MAX);
		if (i < len && data[i] == '"') {
			quoted = 1;
			i++;
			for (;;) {
				if (i >= len) {
					res = eof ? ROW_BAD : ROW_MORE;
					snprintf(reason, rsize, "quoted field without its closing quote");
					goto out;
				}
				if (data[i] == '"') {
					if (i + 1 >= len && !eof) {
						res = ROW_MORE;
						goto out;
					}
					if (i + 1 < len && data[i + 1] == '"') {
						if (buf_append(&field, "\"", 1) != IOTP_OK)
							goto nomem;
						i += 2;
						continue;
					}
					i++;
					break;
				}
				if (data[i] == '\n')
					nl++;
				if (buf_append(&field, data + i, 1) != IOTP_OK)
					goto nomem;
				i++;
			}
		} else {
			size_t s = i;

			while (i < len && data[i] != ',' && data[i] != '\n') {
				if (data[i] == '"') {
					res = ROW_BAD;
					snprintf(reason, rsize,
					         "stray quote in an unquoted field (column %zu)", row->n + 1);
					goto out;
				}
				i++;
			}
			if (buf_append(&field, data + s, i - s) != IOTP_OK)
				goto nomem;
		}
		/* The field ends here: ',' '\r\n' '\n' or the end. */
		if (i < len && data[i] == '\r' && (i + 1 < len && data[i + 1] == '\n'))
			i++;
		else if (i < len && data[i] == '\r' && i + 1 >= len && !eof) {
			res = ROW_MORE;
			goto out;
		} else if (!quoted && field.len > 0 && field.data[field.len - 1] == '\r' &&
		           (i >= len || data[i] == '\n')) {
			field.data[--field.len] = '\0';
		}
		if (i < len && data[i] != ',' && data[i] != '\n') {
			res = ROW_BAD;
			snprintf(reason, rsize, "text after a closing quote (column %zu)", row->n + 1);
			goto out;
		}
		if (i >= len && !eof) {
			res = ROW_MORE;
			goto out;
		}
		if (row->n >= CSV_MAX_COLUMNS) {
			res = ROW_BAD;
			snprintf(reason, rsize, "more than %d columns", CSV_MAX_COLUMNS);
			goto out;
		}
		row->fields[row->n] = buf_detach(&field, NULL);
		if (row->fields[row->n] == NULL && (row->fields[row->n] = calloc(1, 1)) == NULL)
			goto nomem;
		row->n++;
		if (i >= len)
			break;
		if (data[i] == '\n') {
			i++;
			nl++;
			break;
		}
		i++; /* ',' */
	}
	*used = i;
	*lines = nl;
	goto out;
nomem:
	res = ROW_NOMEM;
out:
	buf_cleanup(&field);
	if (res == ROW_BAD) {
		size_t l = manifest_line_len(data, len);

		row_cleanup(row);
		if (l == len && !eof)
			res = ROW_MORE;
		*used = l < len ? l + 1 : l;
		*lines = l < len ? 1 : 0;
	}
	if (res == ROW_MORE || res == ROW_NOMEM)
		row_cleanup(row);
	return res;
}

static int blank_line(const char *data, size_t len, size_t *l)
{
	*l = manifest_line_len(data, len);
	for (size_t i = 0; i < *l; i++)
		if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r')
			return 0;
	return 1;
}

static void csv_close(void *state)
{
	struct csv_state *st = state;

	if (st == NULL)
		return;
	for (size_t i = 0; i < st->ncols; i++)
		free(st->names[i]);
	free(st);
}

static iotp_rc csv_open(const char *data, size_t len, int eof, void **state, size_t *head_bytes,
                        int64_t *head_lines, enum manifest_step *step, struct iotp_err *err)
{
	struct csv_state *st = NULL;
	struct csv_row row;
	char reason[MANIFEST_REASON_MAX] = "";
	size_t used = 0;
	int64_t lines = 0;
	iotp_rc rc = IOTP_OK;

	memset(&row, 0, sizeof(row));
	*step = MANIFEST_RECORD;
	if (len == 0) {
		*state = NULL;
		*head_bytes = 0;
		*head_lines = 0;
		return IOTP_OK;
	}
	switch (parse_row(data, len, eof, &row, &used, &lines, reason, sizeof(reason))) {
	case ROW_MORE:
		*step = MANIFEST_MORE;
		return IOTP_OK;
	case ROW_NOMEM:
		return iotp_err_set(err, IOTP_ERR_NOMEM, "csv: out of memory");
	case ROW_BAD:
		return iotp_err_set(err, IOTP_ERR_INVALID, "csv header row: %s", reason);
	case ROW_OK:
		break;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "csv: out of memory");
		goto out;
	}
	for (size_t i = 0; i < row.n; i++) {
		json_t *probe = json_string(row.fields[i]);

		json_decref(probe);
		if (row.fields[i][0] == '\0') {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "csv header row: column %zu has no name",
			                  i + 1);
			goto out;
		}
		if (probe == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID,
			                  "csv header row: the name of column %zu is not UTF-8", i + 1);
			goto out;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(row.fields[i], row.fields[j]) == 0) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID,
				                  "csv header row: column '%.64s' appears twice",
				                  row.fields[i]);
				goto out;
			}
	}
	for (size_t i = 0; i < row.n; i++) {
		st->names[i] = row.fields[i];
		row.fields[i] = NULL;
	}
	st->ncols = row.n;
	row.n = 0;
	*state = st;
	st = NULL;
	*head_bytes = used;
	*head_lines = lines;
out:
	row_cleanup(&row);
	csv_close(st);
	return rc;
}

static iotp_rc csv_next(void *state, const char *data, size_t len, int eof,
                        struct manifest_item *out, struct iotp_err *err)
{
	struct csv_state *st = state;
	struct csv_row row;
	json_t *obj = NULL;
	size_t l;

	memset(&row, 0, sizeof(row));
	if (blank_line(data, len, &l)) {
		if (l == len && !eof) {
			out->step = MANIFEST_MORE;
			return IOTP_OK;
		}
		out->step = MANIFEST_SKIP;
		out->used = l < len ? l + 1 : l;
		out->lines = l < len ? 1 : 0;
		return IOTP_OK;
	}
	switch (parse_row(data, len, eof, &row, &out->used, &out->lines, out->reason,
	                  sizeof(out->reason))) {
	case ROW_MORE:
		out->step = MANIFEST_MORE;
		return IOTP_OK;
	case ROW_NOMEM:
		return iotp_err_set(err, IOTP_ERR_NOMEM, "csv: out of memory");
	case ROW_BAD:
		out->step = MANIFEST_BAD;
		return IOTP_OK;
	case ROW_OK:
		break;
	}
	out->step = MANIFEST_BAD;
	if (st == NULL || row.n != st->ncols) {
		snprintf(out->reason, sizeof(out->reason), "row has %zu fields, the header has %zu",
		         row.n, st != NULL ? st->ncols : (size_t)0);
		goto out;
	}
	obj = json_object();
	if (obj == NULL)
		goto nomem;
	for (size_t i = 0; i < row.n; i++) {
		json_t *v;

		if (row.fields[i][0] == '\0')
			continue;
		v = json_string(row.fields[i]);
		if (v == NULL) {
			snprintf(out->reason, sizeof(out->reason), "column '%.64s' is not UTF-8",
			         st->names[i]);
			goto out;
		}
		if (json_object_set_new(obj, st->names[i], v) != 0)
			goto nomem;
	}
	out->step = MANIFEST_RECORD;
	out->params = obj;
	obj = NULL;
out:
	json_decref(obj);
	row_cleanup(&row);
	return IOTP_OK;
nomem:
	json_decref(obj);
	row_cleanup(&row);
	return iotp_err_set(err, IOTP_ERR_NOMEM, "csv: out of memory");
}

const struct manifest_format manifest_csv = {
	"csv",
	csv_open,
	csv_next,
	csv_close,
};
