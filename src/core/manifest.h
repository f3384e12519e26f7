/*
 * Manifest importers: the input formats of bulk registration, each turning
 * an input file into a stream of records, one parameter map (a JSON object
 * of string values) per device, for the provisioning template of the task.
 *
 *   jsonl      one JSON object per line (StartThingRegistrationTask's
 *              format); blank lines are skipped.
 *   certs-pem  a bundle of PEM certificates (a vendor's manifest); each
 *              certificate gives CertificatePem, CertificateId, and the
 *              subject fields it has (CommonName, SerialNumber,
 *              Organization, OrganizationalUnit, Country, StateName,
 *              DistinguishedNameQualifier) plus CertificateSerial (the
 *              serial number in hex). Text between certificates is skipped.
 *   csv        RFC 4180: the first row names the parameters, each further
 *              row is one record (quoted fields may hold commas, quotes
 *              and line breaks); empty cells are left out of the map.
 *
 * A format is one file (manifest_<name>.c) holding one `struct
 * manifest_format` and one line in the table of manifest.c: that is all a
 * new format needs. Formats parse from memory and never read past the bytes
 * they are given, so the file reader (manifest_file_*) can feed them
 * windows of a file of any size and resume at a byte offset, and the fuzz
 * target can feed them anything.
 *
 * Record boundaries are where a task's cursor may stop: a reader opened at
 * a boundary it returned earlier (offset and line) yields exactly the
 * records that followed it.
 */
#ifndef IOTP_MANIFEST_H
#define IOTP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

#define MANIFEST_RECORD_MAX (256 * 1024) /* bytes of one record */
#define MANIFEST_REASON_MAX 256

enum manifest_step {
	MANIFEST_RECORD = 1, /* a record: params set */
	MANIFEST_BAD,        /* a malformed record, skipped: reason set */
	MANIFEST_SKIP,       /* nothing to apply (blank line, text between certificates) */
	MANIFEST_MORE        /* the record goes on past the bytes given (only when !eof) */
};

/* One step of a format. */
struct manifest_item {
	enum manifest_step step;
	size_t used;                       /* bytes consumed (0 only for MORE) */
	int64_t lines;                     /* line breaks consumed */
	json_t *params;                    /* RECORD: new reference, the caller's */
	char reason[MANIFEST_REASON_MAX];  /* BAD: why, for the ERRORS report */
};

struct manifest_format {
	const char *name;
	/* Reads the head of the file (data from byte 0; eof when data is the
	 * whole file) into a new *state (may stay NULL for formats without
	 * one): csv reads its header row. *head_bytes and *head_lines say what
	 * the head occupies; records start after it. A head that goes on past
	 * len without eof is MANIFEST_MORE in *step (then nothing is
	 * allocated); IOTP_ERR_INVALID when the head is malformed (the whole
	 * file is then unusable), message in err. */
	iotp_rc (*open)(const char *data, size_t len, int eof, void **state,
	                size_t *head_bytes, int64_t *head_lines, enum manifest_step *step,
	                struct iotp_err *err);
	/* Decodes what starts at data (a boundary), len > 0 bytes available.
	 * Fills *out; IOTP_ERR_NOMEM is the only failure. */
	iotp_rc (*next)(void *state, const char *data, size_t len, int eof,
	                struct manifest_item *out, struct iotp_err *err);
	/* Frees the state; NULL is a no-op. */
	void (*close)(void *state);
};

extern const struct manifest_format manifest_jsonl;
extern const struct manifest_format manifest_certs_pem;
extern const struct manifest_format manifest_csv;

/* The format called name ("jsonl", "certs-pem", "csv"), or NULL. */
const struct manifest_format *manifest_format_find(const char *name);
/* The names of every format, comma-separated, for messages and --help. */
const char *manifest_format_names(void);

/* Shared by the formats: the length of the line at data (up to, not
 * including, '\n'), or len when there is no '\n' in [data, data+len). */
size_t manifest_line_len(const char *data, size_t len);

/* ------------------------------------------------------------------ */
/* Reading a file                                                      */

struct manifest_file;

/* One record (or malformed record) read from a file. */
struct manifest_record {
	enum manifest_step step;           /* MANIFEST_RECORD or MANIFEST_BAD */
	int64_t line;                      /* 1-based line where it starts */
	json_t *params;                    /* RECORD: new reference, the caller's */
	char reason[MANIFEST_REASON_MAX];  /* BAD */
	int64_t end_offset;                /* boundary after it: resume here */
	int64_t end_line;                  /* lines consumed up to end_offset */
};

/* Opens path for fmt and positions the reader at a boundary: offset 0 and
 * line 0 for the start, else an end_offset/end_line pair an earlier reader
 * returned. The format's head is read again from the start of the file.
 * Errors: IOTP_ERR_NOT_FOUND / IOTP_ERR_IO (cannot open or read, the
 * message names the file), IOTP_ERR_INVALID (malformed head, or offset past
 * the end of the file). Free with manifest_file_close(). */
iotp_rc manifest_file_open(const char *path, const struct manifest_format *fmt,
                           int64_t offset, int64_t line, struct manifest_file **out,
                           struct iotp_err *err);
/* Reads the next record. *done is set to 1 at the end of the file (then
 * *rec is untouched). A record over MANIFEST_RECORD_MAX bytes is a BAD
 * record and reading goes on at the next line. IOTP_ERR_IO / NOMEM. */
iotp_rc manifest_file_next(struct manifest_file *mf, struct manifest_record *rec, int *done,
                           struct iotp_err *err);
/* Size of the file in bytes when it was opened. */
int64_t manifest_file_size(const struct manifest_file *mf);
void manifest_file_close(struct manifest_file *mf);

/* As manifest_file_next over a memory buffer: the fuzz targets and the
 * unit tests drive the formats the way the file reader does. Reads every
 * record of [data, data+len) and calls fn for each (fn's params are
 * borrowed for the call). Returns the format's open error, or IOTP_OK. */
typedef void (*manifest_record_fn)(void *ud, const struct manifest_record *rec);
iotp_rc manifest_parse_buffer(const struct manifest_format *fmt, const char *data, size_t len,
                              manifest_record_fn fn, void *ud, struct iotp_err *err);

#endif
