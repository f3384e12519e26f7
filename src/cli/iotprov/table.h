/*
 * Human-readable tables for iotprov: columns aligned to their widest cell,
 * a header row, two spaces between columns, the last column not padded.
 * Cells are copied and cleaned (control characters become '?', so text from
 * the server cannot drive the terminal). Widths count UTF-8 characters.
 */
#ifndef IOTP_CLI_TABLE_H
#define IOTP_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table;

/* A table of ncols columns with these headers (copied). NULL when out of
 * memory. Free with table_free(). */
struct table *table_new(size_t ncols, const char *const *headers);
/* Appends a row of ncols cells (copied; a NULL cell prints as "-").
 * Returns 0, or -1 when out of memory. */
int table_add(struct table *t, const char *const *cells);
size_t table_rows(const struct table *t);
/* Width in characters of column col over the header and every row. */
size_t table_width(const struct table *t, size_t col);
/* Prints the header and the rows. */
void table_print(const struct table *t, FILE *f);
/* Prints one row of cells padded to widths[] (for rows that arrive after
 * the table was printed, as in `audit tail --follow`). */
void table_print_row(FILE *f, size_t ncols, const char *const *cells, const size_t *widths);
/* NULL is a no-op. */
void table_free(struct table *t);

#endif
