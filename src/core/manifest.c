/*
 * The manifest format table and the reader that feeds a format windows of a
 * file (see manifest.h). The reader keeps one buffer of MANIFEST_RECORD_MAX
 * bytes: a format that needs more than the buffer holds for one record gets
 * that record reported as malformed and the reader resynchronises at the
 * next line break, so a single huge line can neither exhaust memory nor
 * stop a task.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "core/manifest.h"

static const struct manifest_format *const formats[] = {
	&manifest_jsonl,
	&manifest_certs_pem,
	&manifest_csv,
};

const struct manifest_format *manifest_format_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < IOTP_ARRAY_LEN(formats); i++)
		if (strcmp(formats[i]->name, name) == 0)
			return formats[i];
	return NULL;
}

const char *manifest_format_names(void)
{
	return "jsonl, certs-pem, csv";
}

size_t manifest_line_len(const char *data, size_t len)
{
	const char *nl = memchr(data, '\n', len);

	return nl != NULL ? (size_t)(nl - data) : len;
}

/* ------------------------------------------------------------------ */
/* The reader                                                          */

struct manifest_file {
	int fd;                   /* -1 when reading from memory */
	const char *mem;          /* memory source */
	size_t mem_len, mem_pos;
	const struct manifest_format *fmt;
	void *state;
	char *buf;
	size_t cap, start, end;   /* window: buf[start, end) */
	int64_t off;              /* file offset of buf[start] */
	int64_t line;             /* line breaks before off */
	int64_t size;
	int eof;                  /* the source has no more bytes */
	char path[512];
};

/* Moves the unread bytes to the front and reads until the buffer is full or
 * the source ends. */
static iotp_rc fill(struct manifest_file *mf, struct iotp_err *err)
{
	if (mf->start > 0) {
		memmove(mf->buf, mf->buf + mf->start, mf->end - mf->start);
		mf->end -= mf->start;
		mf->start = 0;
	}
	while (!mf->eof && mf->end < mf->cap) {
		size_t want = mf->cap - mf->end;
		ssize_t n;

		if (mf->fd < 0) {
			n = (ssize_t)(mf->mem_len - mf->mem_pos < want ? mf->mem_len - mf->mem_pos
			                                                : want);
			memcpy(mf->buf + mf->end, mf->mem + mf->mem_pos, (size_t)n);
			mf->mem_pos += (size_t)n;
		} else {
			n = read(mf->fd, mf->buf + mf->end, want);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return iotp_err_set(err, IOTP_ERR_IO, "read %s: %s", mf->path,
				                    strerror(errno));
		}
		if (n == 0)
			mf->eof = 1;
		mf->end += (size_t)n;
	}
	return IOTP_OK;
}

static iotp_rc reader_new(const struct manifest_format *fmt, struct manifest_file **out,
                          struct iotp_err *err)
{
	struct manifest_file *mf = calloc(1, sizeof(*mf));

	if (mf == NULL || (mf->buf = malloc(MANIFEST_RECORD_MAX)) == NULL) {
		free(mf);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "manifest reader: out of memory");
	}
	mf->fd = -1;
	mf->fmt = fmt;
	mf->cap = MANIFEST_RECORD_MAX;
	*out = mf;
	return IOTP_OK;
}

/* Reads the format's head from the start of the source. */
static iotp_rc read_head(struct manifest_file *mf, size_t *head_bytes, int64_t *head_lines,
                         struct iotp_err *err)
{
	enum manifest_step step = MANIFEST_RECORD;
	iotp_rc rc;

	if ((rc = fill(mf, err)) != IOTP_OK)
		return rc;
	rc = mf->fmt->open(mf->buf, mf->end, mf->eof, &mf->state, head_bytes, head_lines, &step,
	                   err);
	if (rc != IOTP_OK)
		return rc;
	if (step == MANIFEST_MORE)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "the %s header of %s is longer than %d bytes", mf->fmt->name,
		                    mf->path, MANIFEST_RECORD_MAX);
	return IOTP_OK;
}

iotp_rc manifest_file_open(const char *path, const struct manifest_format *fmt,
                           int64_t offset, int64_t line, struct manifest_file **out,
                           struct iotp_err *err)
{
	struct manifest_file *mf = NULL;
	struct stat sb;
	size_t head_bytes = 0;
	int64_t head_lines = 0;
	iotp_rc rc;

	if ((rc = reader_new(fmt, &mf, err)) != IOTP_OK)
		return rc;
	util_strlcpy(mf->path, path, sizeof(mf->path));
	mf->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (mf->fd < 0) {
		rc = iotp_err_set(err, errno == ENOENT ? IOTP_ERR_NOT_FOUND : IOTP_ERR_IO,
		                  "cannot open input file %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(mf->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "input %s is not a regular file", path);
		goto out;
	}
	mf->size = (int64_t)sb.st_size;
	if ((rc = read_head(mf, &head_bytes, &head_lines, err)) != IOTP_OK)
		goto out;
	if (offset < 0 || offset > mf->size || line < 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "resume offset %lld is outside %s (%lld bytes): was it replaced?",
		                  (long long)offset, path, (long long)mf->size);
		goto out;
	}
	if (offset <= (int64_t)head_bytes) {
		mf->start = head_bytes;
		mf->off = (int64_t)head_bytes;
		mf->line = head_lines;
	} else {
		if (lseek(mf->fd, (off_t)offset, SEEK_SET) != (off_t)offset) {
			rc = iotp_err_set(err, IOTP_ERR_IO, "seek %s: %s", path, strerror(errno));
			goto out;
		}
		mf->start = mf->end = 0;
		mf->eof = 0;
		mf->off = offset;
		mf->line = line;
	}
	*out = mf;
	mf = NULL;
out:
	manifest_file_close(mf);
	return rc;
}

int64_t manifest_file_size(const struct manifest_file *mf)
{
	return mf->size;
}

void manifest_file_close(struct manifest_file *mf)
{
	if (mf == NULL)
		return;
	if (mf->fmt != NULL && mf->state != NULL)
		mf->fmt->close(mf->state);
	if (mf->fd >= 0)
		close(mf->fd);
	free(mf->buf);
	free(mf);
}

/* Consumes n bytes of the window, counting line breaks. */
static void consume(struct manifest_file *mf, size_t n, int64_t lines)
{
	mf->start += n;
	mf->off += (int64_t)n;
	mf->line += lines;
}

/* A record that does not fit the buffer: skip to after the next line
 * break (or the end) and report it. */
static iotp_rc skip_oversized(struct manifest_file *mf, struct manifest_record *rec,
                              struct iotp_err *err)
{
	iotp_rc rc;

	rec->step = MANIFEST_BAD;
	rec->line = mf->line + 1;
	rec->params = NULL;
	snprintf(rec->reason, sizeof(rec->reason),
	         "record longer than %d bytes: skipped to the next line", MANIFEST_RECORD_MAX);
	for (;;) {
		size_t avail = mf->end - mf->start;
		size_t l = manifest_line_len(mf->buf + mf->start, avail);

		if (l < avail) {
			consume(mf, l + 1, 1);
			break;
		}
		consume(mf, avail, 0);
		if (mf->eof)
			break;
		if ((rc = fill(mf, err)) != IOTP_OK)
			return rc;
	}
	rec->end_offset = mf->off;
	rec->end_line = mf->line;
	return IOTP_OK;
}

iotp_rc manifest_file_next(struct manifest_file *mf, struct manifest_record *rec, int *done,
                           struct iotp_err *err)
{
	struct manifest_item item;
	iotp_rc rc;

	for (;;) {
		size_t avail = mf->end - mf->start;

		if (avail == 0) {
			if (mf->eof) {
				*done = 1;
				return IOTP_OK;
			}
			if ((rc = fill(mf, err)) != IOTP_OK)
				return rc;
			continue;
		}
		memset(&item, 0, sizeof(item));
		rc = mf->fmt->next(mf->state, mf->buf + mf->start, avail, mf->eof, &item, err);
		if (rc != IOTP_OK)
			return rc;
		if (item.step == MANIFEST_MORE || item.used == 0 || item.used > avail) {
			json_decref(item.params);
			if (!mf->eof && (mf->start > 0 || mf->end < mf->cap)) {
				if ((rc = fill(mf, err)) != IOTP_OK)
					return rc;
				continue;
			}
			*done = 0;
			return skip_oversized(mf, rec, err);
		}
		rec->line = mf->line + 1;
		consume(mf, item.used, item.lines);
		if (item.step == MANIFEST_SKIP) {
			json_decref(item.params);
			continue;
		}
		rec->step = item.step;
		rec->params = item.step == MANIFEST_RECORD ? item.params : NULL;
		if (item.step != MANIFEST_RECORD)
			json_decref(item.params);
		memcpy(rec->reason, item.reason, sizeof(rec->reason));
		rec->reason[sizeof(rec->reason) - 1] = '\0';
		rec->end_offset = mf->off;
		rec->end_line = mf->line;
		*done = 0;
		return IOTP_OK;
	}
}

iotp_rc manifest_parse_buffer(const struct manifest_format *fmt, const char *data, size_t len,
                              manifest_record_fn fn, void *ud, struct iotp_err *err)
{
	struct manifest_file *mf = NULL;
	size_t head_bytes = 0;
	int64_t head_lines = 0;
	iotp_rc rc;

	if ((rc = reader_new(fmt, &mf, err)) != IOTP_OK)
		return rc;
	util_strlcpy(mf->path, "(buffer)", sizeof(mf->path));
	mf->mem = data;
	mf->mem_len = len;
	mf->size = (int64_t)len;
	if ((rc = read_head(mf, &head_bytes, &head_lines, err)) != IOTP_OK)
		goto out;
	mf->start = head_bytes;
	mf->off = (int64_t)head_bytes;
	mf->line = head_lines;
	for (;;) {
		struct manifest_record rec;
		int done = 0;

		memset(&rec, 0, sizeof(rec));
		if ((rc = manifest_file_next(mf, &rec, &done, err)) != IOTP_OK || done)
			break;
		fn(ud, &rec);
		json_decref(rec.params);
	}
out:
	manifest_file_close(mf);
	return rc;
}
