/* mailhubd: the mailhub daemon. */
#include "config.h"

#include "mh_daemon.h"
#include "mh_log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG MH_SYSCONFDIR "/mailhub/mailhub.yaml"
#define MAX_EXTRA_PATH 32

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mailhubd [OPTION]...\n"
            "Run the mailhub daemon: import and sync linked mailboxes, notify, store.\n"
            "\n"
            "  -c, --config FILE        configuration file (default: %s)\n"
            "  -t, --check-config[=FILE]  validate the configuration (and every plugin's\n"
            "                           options) and exit: 0 valid, 1 invalid\n"
            "  -l, --list-plugins       list the plugins found in the plugin path and exit\n"
            "      --plugin-help NAME   show a plugin's options and an example, and exit\n"
            "  -P, --plugin-path DIR    search DIR for plugins before the configured path\n"
            "                           (repeatable)\n"
            "  -L, --log-level LEVEL    error, warn, info or debug (overrides the config)\n"
            "      --log-target TARGET  stderr or syslog (overrides the config)\n"
            "  -V, --version            print the version and plugin ABI, and exit\n"
            "  -h, --help               print this help and exit\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop gracefully (a second one stops at once);\n"
            "SIGHUP reloads the configuration where that is safe and logs what it could\n"
            "not apply.  See mailhubd(8) and mailhub.yaml(5).\n",
            DEFAULT_CONFIG);
}

int main(int argc, char **argv)
{
    enum { OPT_PLUGIN_HELP = 256, OPT_LOG_TARGET };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", optional_argument, NULL, 't'},
        {"list-plugins", no_argument, NULL, 'l'},
        {"plugin-help", required_argument, NULL, OPT_PLUGIN_HELP},
        {"plugin-path", required_argument, NULL, 'P'},
        {"log-level", required_argument, NULL, 'L'},
        {"log-target", required_argument, NULL, OPT_LOG_TARGET},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *extra[MAX_EXTRA_PATH + 1] = {NULL};
    size_t n_extra = 0;
    struct mh_daemon_opts o = {.config_path = NULL, .extra_plugin_path = extra, .log_level_override = -1,
                               .log_target_override = -1};
    int check = 0, list = 0;
    const char *help_name = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:t::lP:L:Vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.config_path = optarg;
            break;
        case 't':
            check = 1;
            if (optarg)
                o.config_path = optarg;
            else if (optind < argc && argv[optind][0] != '-')
                o.config_path = argv[optind++]; /* --check-config FILE */
            break;
        case 'l':
            list = 1;
            break;
        case OPT_PLUGIN_HELP:
            help_name = optarg;
            break;
        case 'P':
            if (n_extra == MAX_EXTRA_PATH) {
                fprintf(stderr, "mailhubd: too many --plugin-path options (at most %d)\n", MAX_EXTRA_PATH);
                return 2;
            }
            extra[n_extra++] = optarg;
            break;
        case 'L':
            o.log_level_override = mh_log_level_parse(optarg);
            if (o.log_level_override < 0) {
                fprintf(stderr, "mailhubd: --log-level: expected error, warn, info or debug, got '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_LOG_TARGET:
            if (strcmp(optarg, "stderr") == 0)
                o.log_target_override = MH_LOGT_STDERR;
            else if (strcmp(optarg, "syslog") == 0)
                o.log_target_override = MH_LOGT_SYSLOG;
            else {
                fprintf(stderr, "mailhubd: --log-target: expected stderr or syslog, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'V':
            printf("mailhubd %s (plugin ABI %d.%d)\n", VERSION, MH_ABI_MAJOR, MH_ABI_MINOR);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mailhubd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    int explicit_config = o.config_path != NULL;
    if (o.config_path == NULL)
        o.config_path = DEFAULT_CONFIG;
    if (o.log_level_override >= 0)
        mh_log_set_level(o.log_level_override);

    if (list)
        return mh_daemon_list_plugins(&o);
    if (help_name)
        return mh_daemon_plugin_help(&o, help_name);
    if (check)
        return mh_daemon_check_config(&o, 0);

    if (access(o.config_path, R_OK) != 0) {
        fprintf(stderr, "mailhubd: cannot read the configuration %s%s\n", o.config_path,
                explicit_config ? "" : " (use -c FILE; config/mailhub.yaml in the source tree is an example)");
        return 1;
    }
    struct mh_daemon *d = mh_daemon_new(&o);
    if (d == NULL)
        return 1;
    int rc = mh_daemon_run(d);
    mh_daemon_free(&d);
    return rc;
}
