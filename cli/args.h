// args.h — the one option parser of the s2s commands: a command declares its options as a table (name, kind,
// where the value goes, help), and gets parsing, type checks with the option named, repeatable and comma-listed
// values, positionals and a generated --help from it.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    S2S_ARG_FLAG,  // bool *, no value
    S2S_ARG_STR,   // const char **
    S2S_ARG_INT,   // int64_t *
    S2S_ARG_F64,   // double *
    S2S_ARG_LIST,  // s2s_arg_list *: repeatable, and each value split at commas
    S2S_ARG_MULTI, // s2s_arg_list *: repeatable, values kept whole
} s2s_arg_kind;

#define S2S_ARG_LIST_MAX 1024
typedef struct s2s_arg_list {
    const char *v[S2S_ARG_LIST_MAX];
    int n;
} s2s_arg_list;

typedef struct s2s_arg {
    const char *name;  // "--config"; NULL ends the table
    s2s_arg_kind kind;
    void *dst;
    const char *meta;  // the value's name in --help ("FILE"); NULL for flags
    const char *help;
} s2s_arg;

typedef struct s2s_cli {
    const char *cmd;       // "train"
    const char *synopsis;  // what follows "usage: s2s train"
    const s2s_arg *args;
    const char *epilog;    // printed after the options (may be NULL)
    int min_pos, max_pos;  // positional arguments allowed
} s2s_cli;

// Parses argv[1..argc): options into their destinations, other words into pos[*n_pos]. Returns 0 to run, 1 when
// --help was printed (exit 0), 2 after printing a usage error naming the option (exit 2). Lists point into argv,
// which comma-listed values modify.
int s2s_args_parse(const s2s_cli *c, int argc, char **argv, const char **pos, int *n_pos);
void s2s_args_usage(const s2s_cli *c, FILE *f);
