/*
 * Helpers shared by the registry_*.c files and nobody else: transactions,
 * events, paging tokens, name and attribute checks, and reading columns out
 * of store rows. Not part of the registry's public contract (registry.h).
 */
#ifndef IOTP_REGISTRY_INTERNAL_H
#define IOTP_REGISTRY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/registry.h"
#include "core/store/store.h"

/* Registry calls made by a caller that rolls back its whole transaction
 * level when any of them fails (prov_apply) need no savepoint of their own:
 * between registry_tx_flat_begin (right after the caller's store_begin) and
 * registry_tx_flat_end (before its commit or rollback), reg_tx_begin at the
 * caller's depth on this thread joins the caller's level and reg_tx_end
 * only passes the code on. A failing call then leaves its partial writes
 * (and, for a failed statement, the poisoned level) to the caller, which
 * must roll its level back: that is the contract of using this. The
 * caller's own level is a real one, so a transaction around the caller (a
 * bulk batch) stays usable after the caller's rollback. saved keeps the
 * previous state for nesting; end restores it. */
struct registry_flat {
	const struct store *store;
	int depth;
};
void registry_tx_flat_begin(struct iotp_core *core, struct registry_flat *saved);
void registry_tx_flat_end(const struct registry_flat *saved);

/* Pairs with reg_tx_end: remembers the depth so that a failing call unwinds
 * exactly its own level. */
iotp_rc reg_tx_begin(struct iotp_core *core, int *depth0, struct iotp_err *err);
/* Commits when rc is IOTP_OK, else rolls back to depth0; returns the final
 * rc (a failed commit's code when the commit fails). */
iotp_rc reg_tx_end(struct iotp_core *core, int depth0, iotp_rc rc, struct iotp_err *err);

/* Appends an event; detail (may be NULL) is a JSON object whose reference
 * is stolen. */
iotp_rc reg_event(struct iotp_core *core, const char *actor, const char *action,
                  const char *object, json_t *detail, struct iotp_err *err);

/* Builds the ARN of "<kind>/<name>" into out (REGISTRY_ARN_MAX). */
iotp_rc reg_arn(struct iotp_core *core, const char *kind, const char *name, char *out,
                struct iotp_err *err);

/* Paging. tag distinguishes lists ('t' things, 'c' certificates...), so a
 * token from one list is refused by another. reg_page_open validates the
 * request: *max gets the page size, *key (malloc'ed, NULL on the first page)
 * the last key of the previous page. */
iotp_rc reg_page_open(const struct registry_page *page, char tag, int def, int *max,
                      char **key, struct iotp_err *err);
/* A token for the key of the last item returned; *out malloc'ed. */
iotp_rc reg_page_token(char tag, const char *key, char **out, struct iotp_err *err);
/* Keys made of a timestamp and an id ("<created>:<id>"). */
iotp_rc reg_page_token_ts(char tag, int64_t ts, const char *id, char **out,
                          struct iotp_err *err);
iotp_rc reg_page_key_ts(const char *key, int64_t *ts, const char **id, struct iotp_err *err);
/* Ends a listing query on columns created and id, in sql (size bytes, n
 * used): the keyset condition when id is not NULL (the key of the previous
 * page), the order, and LIMIT max + 1 (one more row says there is a next
 * page). The values go to p[*np...] (at most 3). Returns the new length. */
size_t reg_page_sql_ts(char *sql, size_t size, size_t n, int ascending, int64_t ts,
                       const char *id, int max, struct store_val *p, int *np);

/* Names and strings. */
int reg_name_ok(const char *s);               /* [a-zA-Z0-9:_-]{1,128} */
int reg_cert_id_ok(const char *s);            /* 64 hex (any case) */
/* Lowercases a 64-hex id into out. INVALID unless reg_cert_id_ok. */
iotp_rc reg_cert_id_norm(const char *in, char out[PKI_CERT_ID_LEN + 1], const char *what,
                         struct iotp_err *err);
/* Descriptions: at most 2028 bytes of printable characters or spaces
 * (UTF-8 allowed), as the model's [\p{Graph}\x20]*. */
int reg_desc_ok(const char *s);
/* "<kind>/<name>" into out (REGISTRY_ARN_MAX): the event object. */
void reg_object(const char *kind, const char *name, char *out);
/* Resource part of an ARN or the argument itself when it is not an ARN. */
const char *reg_resource(const char *arn_or_resource);

/* Attributes. reg_attrs_apply computes the attributes to store from the
 * current ones (may be NULL) and the request (may be NULL: keep): a new
 * object in *out (caller decrefs). Checks names and values; max is the
 * count limit (INVALID above it). */
iotp_rc reg_attrs_apply(const json_t *current, const json_t *request, int merge, size_t max,
                        const char *what, json_t **out, struct iotp_err *err);
/* Canonical text of a JSON value (sorted keys, compact); malloc'ed. */
iotp_rc reg_json_text(const json_t *v, char **out, struct iotp_err *err);
/* Parses stored JSON text; an unparsable column is IOTP_ERR_DB. */
iotp_rc reg_json_parse(const char *text, json_t **out, struct iotp_err *err);

/* Row access. */
const char *reg_col_str(const struct store_row *row, int i);  /* NULL for SQL NULL */
int64_t reg_col_int(const struct store_row *row, int i);
void reg_col_copy(const struct store_row *row, int i, char *out, size_t size);
/* strdup of a column; NULL for SQL NULL. Sets *failed on allocation failure. */
char *reg_col_dup(const struct store_row *row, int i, int *failed);

/* Existence check: *found = 1 when the query returns a row. */
iotp_rc reg_exists(struct iotp_core *core, const char *sql, const struct store_val *p,
                   int np, int *found, struct iotp_err *err);

/* Grows a result array by one zeroed element; NOMEM on failure. */
iotp_rc reg_grow(void **items, size_t *count, size_t elem);

/* Collects strings (one column) from rows; used by the string lists. */
struct reg_strs {
	char **items;
	size_t count;
	iotp_rc rc;
	char page_key[24]; /* when set: the next page's key, instead of the last item */
};
int reg_strs_row(void *ud, const struct store_row *row);
void reg_strs_free(struct reg_strs *s);
/* Ends a string page fetched with LIMIT max+1: moves the first max items
 * into out and, when there was one more, sets the token from the last key.
 * as_arn: turn each resource part into a full ARN. s is emptied. */
iotp_rc reg_strs_finish(struct iotp_core *core, struct reg_strs *s, char tag, int max,
                        int as_arn, struct registry_str_list *out, struct iotp_err *err);

/* Collects refs (column 0 = name) of one kind ("thinggroup", "policy"). */
struct reg_refs {
	struct iotp_core *core;
	const char *kind;
	struct registry_ref *items;
	size_t count;
	iotp_rc rc;
	struct iotp_err err;
};
int reg_refs_row(void *ud, const struct store_row *row);
/* As reg_strs_finish for refs; the key is the name. r is emptied. */
iotp_rc reg_refs_finish(struct reg_refs *r, char tag, int max, struct registry_ref_list *out,
                        struct iotp_err *err);

#endif
