/* Aligned text tables for ferromq-ctl: each column as wide as its widest
 * cell (counted in UTF-8 characters), numbers right-aligned, two spaces
 * between columns, no trailing blanks. */
#ifndef FM_CTL_TABLE_H
#define FM_CTL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLUMNS 16

struct table {
	size_t ncols, nrows, cap;
	const char *title[TABLE_MAX_COLUMNS]; /* static strings, or all NULL */
	bool right[TABLE_MAX_COLUMNS];
	char **cells; /* nrows x ncols, owned */
};

/* Starts a table with ncols (<= TABLE_MAX_COLUMNS) columns titled by the
 * static strings in titles (NULL: no header line); right[i] (right may be
 * NULL) right-aligns column i. */
void table_init(struct table *t, size_t ncols, const char *const *titles, const bool *right);

/* Appends a row, copying the ncols strings of cells. Returns 0 or -1 when
 * out of memory. */
int table_add(struct table *t, const char *const *cells);

/* Writes the header line (if any) and every row to out. */
void table_print(const struct table *t, FILE *out);

/* Frees the cells; t may then be initialised again. */
void table_free(struct table *t);

/* Display width of a UTF-8 string: one per character. */
size_t table_width(const char *s);

#endif
