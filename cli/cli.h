// cli.h — the s2s subcommand interface. A subcommand is a name, a one-line help and a main.
#pragma once

typedef struct s2s_cmd {
    const char *name;
    const char *help;
    int (*run)(int argc, char **argv);  // argv[0] is the subcommand name
} s2s_cmd;

extern const s2s_cmd s2s_cmd_version;
extern const s2s_cmd s2s_cmd_tokenize;
extern const s2s_cmd s2s_cmd_inspect;
extern const s2s_cmd s2s_cmd_mel;
extern const s2s_cmd s2s_cmd_prep;
extern const s2s_cmd s2s_cmd_units;
extern const s2s_cmd s2s_cmd_init, s2s_cmd_forward, s2s_cmd_train, s2s_cmd_plot, s2s_cmd_plan;
extern const s2s_cmd s2s_cmd_export, s2s_cmd_chat, s2s_cmd_eval, s2s_cmd_generate_continuations;
