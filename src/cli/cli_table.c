/* cli_table.c - aligned text tables (see cli_table.h). */
#include "cli/cli_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MAX 512 /* a longer cell is cut */
#define COLS_MAX 16

struct cli_table {
	const struct cli_col *cols;
	int ncols;
	char **cells; /* rows * ncols */
	int rows, cap;
};

struct cli_table *cli_table_new(const struct cli_col *cols, int ncols)
{
	struct cli_table *t;

	if (ncols < 1 || ncols > COLS_MAX)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cols = cols;
	t->ncols = ncols;
	return t;
}

void cli_table_free(struct cli_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->rows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void cli_table_clean(char *buf, size_t cap, const char *s)
{
	size_t i = 0;

	if (!cap)
		return;
	for (; s && s[i] && i + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[i] = '\0';
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
	char buf[CELL_MAX];

	if (t->rows == t->cap) {
		int ncap = t->cap ? t->cap * 2 : 16;
		char **n = realloc(t->cells, sizeof(*n) * (size_t)ncap * (size_t)t->ncols);
		if (!n)
			return -ENOMEM;
		t->cells = n;
		t->cap = ncap;
	}
	for (int c = 0; c < t->ncols; c++) {
		cli_table_clean(buf, sizeof(buf), cells[c] ? cells[c] : "-");
		t->cells[t->rows * t->ncols + c] = strdup(buf);
		if (!t->cells[t->rows * t->ncols + c]) {
			while (c--)
				free(t->cells[t->rows * t->ncols + c]);
			return -ENOMEM;
		}
	}
	t->rows++;
	return 0;
}

int cli_table_rows(const struct cli_table *t)
{
	return t->rows;
}

static void print_row(const struct cli_table *t, FILE *out, const char *const *cells,
                      const int *width)
{
	for (int c = 0; c < t->ncols; c++) {
		int pad = width[c] - (int)strlen(cells[c]);
		bool last = c == t->ncols - 1;
		if (c)
			fputs("  ", out);
		if (t->cols[c].right)
			fprintf(out, "%*s%s", pad, "", cells[c]);
		else
			fprintf(out, "%s%*s", cells[c], last ? 0 : pad, "");
	}
	fputc('\n', out);
}

void cli_table_print(const struct cli_table *t, FILE *out, bool header)
{
	const char *heads[COLS_MAX];
	int width[COLS_MAX];

	for (int c = 0; c < t->ncols; c++) {
		heads[c] = t->cols[c].head;
		width[c] = header ? (int)strlen(heads[c]) : 0;
		for (int r = 0; r < t->rows; r++) {
			int w = (int)strlen(t->cells[r * t->ncols + c]);
			width[c] = w > width[c] ? w : width[c];
		}
	}
	if (header)
		print_row(t, out, heads, width);
	for (int r = 0; r < t->rows; r++)
		print_row(t, out, (const char *const *)&t->cells[r * t->ncols], width);
}
