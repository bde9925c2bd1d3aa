/* cli_table.h - aligned text tables: column widths from the content, two
 * spaces between columns, numbers right-aligned, no trailing blanks. Cells
 * are copied with every byte outside printable ASCII replaced by '?', so
 * what the controller sends cannot move the cursor or break the columns. */
#ifndef LE_CLI_CLI_TABLE_H
#define LE_CLI_CLI_TABLE_H

#include <stdbool.h>
#include <stdio.h>

struct cli_col {
	const char *head;
	bool right; /* right-aligned (numbers) */
};

struct cli_table;

/* cols (1 to 16) must outlive the table. NULL on allocation failure. Caller frees
 * with cli_table_free(). */
struct cli_table *cli_table_new(const struct cli_col *cols, int ncols);
void cli_table_free(struct cli_table *t);
/* Appends a row of ncols cells (NULL cells print as "-"). 0 or -ENOMEM. */
int cli_table_add(struct cli_table *t, const char *const *cells);
int cli_table_rows(const struct cli_table *t);
/* Prints the header line (when header) and every row. */
void cli_table_print(const struct cli_table *t, FILE *out, bool header);

/* Copies s into buf (cap bytes) with bytes outside 0x20-0x7e replaced by '?'. */
void cli_table_clean(char *buf, size_t cap, const char *s);

#endif
