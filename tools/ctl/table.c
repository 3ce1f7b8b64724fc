/* Aligned text tables for ferromq-ctl; see table.h. */
#include "ctl/table.h"

#include <stdlib.h>
#include <string.h>

void table_init(struct table *t, size_t ncols, const char *const *titles, const bool *right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols < TABLE_MAX_COLUMNS ? ncols : TABLE_MAX_COLUMNS;
	for (size_t c = 0; c < t->ncols; c++) {
		t->title[c] = titles ? titles[c] : NULL;
		t->right[c] = right ? right[c] : false;
	}
}

int table_add(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **bigger = realloc(t->cells, cap * t->ncols * sizeof(*bigger));
		if (!bigger)
			return -1;
		t->cells = bigger;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t c = 0; c < t->ncols; c++) {
		if (!(row[c] = strdup(cells[c]))) {
			while (c > 0)
				free(row[--c]);
			return -1;
		}
	}
	t->nrows++;
	return 0;
}

size_t table_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

static void table__line(const struct table *t, const char *const *cells, const size_t *width,
			FILE *out)
{
	for (size_t c = 0; c < t->ncols; c++) {
		size_t pad = width[c] - table_width(cells[c]);
		bool last = c + 1 == t->ncols;
		if (c > 0)
			fputs("  ", out);
		if (t->right[c])
			fprintf(out, "%*s", (int)pad, "");
		fputs(cells[c], out);
		if (!t->right[c] && !last)
			fprintf(out, "%*s", (int)pad, "");
	}
	fputc('\n', out);
}

void table_print(const struct table *t, FILE *out)
{
	size_t width[TABLE_MAX_COLUMNS];
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = t->title[c] ? table_width(t->title[c]) : 0;
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = table_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	if (t->title[0])
		table__line(t, t->title, width, out);
	for (size_t r = 0; r < t->nrows; r++)
		table__line(t, (const char *const *)(t->cells + r * t->ncols), width, out);
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}
