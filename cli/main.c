// s2s — command-line entry point. Each subcommand lives in its own file, cli/cmd_<name>.c;
// this table is the only place that lists them.
#include <stdio.h>
#include <string.h>
#include "cli.h"

static const s2s_cmd *commands[] = {&s2s_cmd_version, &s2s_cmd_tokenize, &s2s_cmd_inspect, &s2s_cmd_mel,
                                    &s2s_cmd_prep, &s2s_cmd_units, &s2s_cmd_init, &s2s_cmd_forward, &s2s_cmd_train,
                                    &s2s_cmd_plan, &s2s_cmd_plot, &s2s_cmd_export, &s2s_cmd_chat, &s2s_cmd_eval,
                                    &s2s_cmd_generate_continuations};

static void usage(FILE *f) {
    fprintf(f, "usage: s2s <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->help);
    fprintf(f, "\n`s2s <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i]->name)) return commands[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "s2s: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
