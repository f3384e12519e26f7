/*
 * Aligned text tables (see table.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/iotprov/table.h"

struct table {
	size_t ncols;
	size_t nrows, alloc;
	char **cells; /* (nrows + 1) * ncols; row 0 is the header */
};

/* Number of UTF-8 characters (bytes that do not continue a sequence). */
static size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static char *clean_copy(const char *s)
{
	char *c = strdup(s != NULL ? s : "-");

	if (c == NULL)
		return NULL;
	for (char *p = c; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	return c;
}

static int add_row(struct table *t, const char *const *cells)
{
	if (t->nrows + 1 >= t->alloc) {
		size_t na = t->alloc ? t->alloc * 2 : 16;
		char **p = realloc(t->cells, na * t->ncols * sizeof(*p));

		if (p == NULL)
			return -1;
		t->cells = p;
		t->alloc = na;
	}
	for (size_t c = 0; c < t->ncols; c++) {
		char *v = clean_copy(cells[c]);

		if (v == NULL) {
			for (size_t k = 0; k < c; k++)
				free(t->cells[t->nrows * t->ncols + k]);
			return -1;
		}
		t->cells[t->nrows * t->ncols + c] = v;
	}
	t->nrows++;
	return 0;
}

struct table *table_new(size_t ncols, const char *const *headers)
{
	struct table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->ncols = ncols;
	if (add_row(t, headers) != 0) {
		free(t);
		return NULL;
	}
	return t;
}

int table_add(struct table *t, const char *const *cells)
{
	return add_row(t, cells);
}

size_t table_rows(const struct table *t)
{
	return t->nrows - 1;
}

size_t table_width(const struct table *t, size_t col)
{
	size_t w = 0;

	for (size_t r = 0; r < t->nrows; r++) {
		size_t cw = text_width(t->cells[r * t->ncols + col]);

		if (cw > w)
			w = cw;
	}
	return w;
}

static void put_clean(FILE *f, const char *s)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f ? '?' : *s, f);
}

void table_print_row(FILE *f, size_t ncols, const char *const *cells, const size_t *widths)
{
	for (size_t c = 0; c < ncols; c++) {
		const char *v = cells[c] != NULL ? cells[c] : "-";

		put_clean(f, v);
		if (c + 1 == ncols) {
			fputc('\n', f);
		} else {
			for (size_t k = text_width(v); k < widths[c] + 2; k++)
				fputc(' ', f);
		}
	}
}

void table_print(const struct table *t, FILE *f)
{
	size_t *widths = calloc(t->ncols, sizeof(*widths));

	if (widths == NULL)
		return;
	for (size_t c = 0; c < t->ncols; c++)
		widths[c] = table_width(t, c);
	for (size_t r = 0; r < t->nrows; r++)
		table_print_row(f, t->ncols, (const char *const *)&t->cells[r * t->ncols], widths);
	free(widths);
}

void table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
