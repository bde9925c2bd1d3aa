/* main.c - the loadease binary: one subcommand per folder under src/. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "controller/controller.h"
#include "sim/sim.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: loadease <command> [options]\n"
	           "\n"
	           "commands:\n"
	           "  agent        run the host agent (monitoring, Redis registry, HTTP API)\n"
	           "  controller   run the controller (hotspots, migrations, placement, REST API)\n"
	           "  sim          replay workload traces through the planner and baselines\n"
	           "  tls          make the cluster CA and the hosts' certificates\n"
	           "\n"
	           "operator commands (talk to the controller's API):\n");
	cli_print_verbs(f);
	fprintf(f, "  %-12s print the version\n\n", "version");
	cli_print_globals(f);
	fprintf(f, "\n'loadease <command> --help' describes each command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("loadease 0.1.0\n");
		return 0;
	}
	if (strcmp(argv[1], "agent") == 0)
		return agent_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "controller") == 0)
		return controller_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "tls") == 0)
		return cli_tls_main(argc - 1, argv + 1);
	if (cli_is_verb(argv[1]))
		return cli_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "sim") == 0)
		return sim_main(argc - 1, argv + 1);
	fprintf(stderr, "loadease: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
