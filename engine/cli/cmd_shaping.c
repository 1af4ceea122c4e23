/* engine/cli/cmd_shaping.c — `salvo shaping explain DOMAIN`: the effective limits for a
 * destination and where each value came from (built-in, config, provider, domain, source). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cli/cli.h"
#include "engine/config/config.h"
#include "engine/dns/dns.h"
#include "engine/ring/ring.h"
#include "schedulers/shaping.h"

static void shaping__usage(FILE *f)
{
    fprintf(f,
        "Usage: salvo shaping explain DOMAIN [options]\n"
        "       salvo shaping warmup|holds|suspend|resume ...   (salvo shaping holds --help)\n\n"
        "Prints the limits Salvo applies to mail for DOMAIN and where each value comes from.\n"
        "The domain's MX hosts are looked up (they select the provider block).\n\n"
        "Options:\n"
        "  --source NAME          egress source whose rules apply\n"
        "  --rules FILE           shaping rules file (default: shaping.file of the config)\n"
        "  --config FILE          configuration file (its limits are the base level)\n"
        "  --resolver HOST:PORT   DNS resolver for the MX lookup (repeatable)\n"
        "  --mx HOST              use these MX host names instead of looking them up (repeatable)\n"
        "  --set PATH=VALUE       set a configuration field (repeatable)\n"
        "  -h, --help             this text\n");
}

struct shaping_lookup {
    bool done;
    char names[DNS_MAX_HOSTS][DNS_NAME_MAX];
    unsigned n;
    char status[128];
};

static void shaping__on_mx(void *arg, const struct dns_result *res)
{
    struct shaping_lookup *l = arg;
    l->done = true;
    snprintf(l->status, sizeof l->status, "%s%s%s", dns_status_to_text(res->status),
             res->implicit_mx ? " (implicit MX)" : "", res->error ? "" : "");
    if (res->status != DNS_OK)
        return;
    for (unsigned i = 0; i < res->nhosts && l->n < DNS_MAX_HOSTS; i++)
        snprintf(l->names[l->n++], DNS_NAME_MAX, "%s", res->hosts[i].name);
}

int cmd_shaping(int argc, char **argv)
{
    static const struct option opts[] = {
        {"source", required_argument, 0, 's'}, {"rules", required_argument, 0, 'r'},
        {"config", required_argument, 0, 'c'}, {"resolver", required_argument, 0, 'R'},
        {"mx", required_argument, 0, 'm'}, {"set", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        shaping__usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EX_USAGE : CLI_EX_OK;
    }
    if (strcmp(argv[1], "warmup") == 0 || strcmp(argv[1], "holds") == 0 ||
        strcmp(argv[1], "suspend") == 0 || strcmp(argv[1], "resume") == 0)
        return cmd_shaping_state(argc, argv);
    if (strcmp(argv[1], "explain") != 0) {
        fprintf(stderr, "salvo shaping: unknown subcommand '%s'\n", argv[1]);
        shaping__usage(stderr);
        return CLI_EX_USAGE;
    }
    struct salvo_config cfg;
    config_init(&cfg);
    char err[CONFIG_ERR_MAX], resolvers[1024] = "";
    const char *source = NULL, *mx_given[DNS_MAX_HOSTS];
    unsigned nmx_given = 0;
    int c, rc = CLI_EX_USAGE;
    struct shaping_rules *rules = NULL;
    argc--;
    argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 's': source = optarg; break;
        case 'r': bad = config_set(&cfg, "shaping.file", optarg, err, sizeof err); break;
        case 'c': bad = config_load_file(&cfg, optarg, err, sizeof err); break;
        case 'R': bad = cli_list_append(resolvers, sizeof resolvers, optarg, err, sizeof err); break;
        case 'm':
            if (nmx_given < DNS_MAX_HOSTS)
                mx_given[nmx_given++] = optarg;
            break;
        case 'S': bad = cli_set(&cfg, optarg, err, sizeof err); break;
        case 'h': shaping__usage(stdout); rc = CLI_EX_OK; goto out;
        default: shaping__usage(stderr); goto out;
        }
        if (bad) {
            fprintf(stderr, "salvo shaping: %s\n", err);
            goto out;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "salvo shaping explain: give exactly one DOMAIN\n");
        goto out;
    }
    const char *domain = argv[optind];
    if ((resolvers[0] && config_set(&cfg, "dns.servers", resolvers, err, sizeof err) != 0) ||
        config_finish(&cfg, err, sizeof err) != 0 || config_load_shaping(&cfg, &rules, err, sizeof err) != 0) {
        fprintf(stderr, "salvo shaping: %s\n", err);
        rc = CLI_EX_CONFIG;
        goto out;
    }
    struct shaping_lookup look = {0};
    const char *mx[DNS_MAX_HOSTS];
    unsigned nmx = 0;
    if (nmx_given) {
        for (unsigned i = 0; i < nmx_given; i++)
            mx[nmx++] = mx_given[i];
        snprintf(look.status, sizeof look.status, "given");
    } else {
        struct ring *ring = NULL;
        struct dns *dns = NULL;
        const char *why = NULL;
        if (ring_create(&ring, &(struct ring_config){.entries = 64, .recv_buffers = 64}) == 0 &&
            dns_create(&dns, ring, &cfg.dns, &why) == 0 &&
            dns_resolve_mx(dns, domain, shaping__on_mx, &look) == 0) {
            for (int i = 0; i < 200 && !look.done; i++)
                ring_run_once(ring, 50);
        }
        if (!look.done)
            snprintf(look.status, sizeof look.status, "lookup failed%s%s", why ? ": " : "", why ? why : "");
        if (dns)
            dns_destroy(dns);
        for (int i = 0; ring && i < 20 && ring_pending(ring) > 0; i++)
            ring_run_once(ring, 5);
        if (ring)
            ring_destroy(ring);
        for (unsigned i = 0; i < look.n; i++)
            mx[nmx++] = look.names[i];
    }
    struct shaping_limits lim;
    struct shaping_provenance prov;
    shaping_resolve(rules, domain, mx, nmx, source, &lim, &prov);
    const char *provider = shaping_provider_of(rules, domain, mx, nmx);
    char site[512];
    shaping_site_key(mx, nmx, site, sizeof site);
    printf("destination:  %s\n", domain);
    printf("source:       %s\n", source ? source : "(none)");
    printf("MX hosts:     ");
    for (unsigned i = 0; i < nmx; i++)
        printf("%s%s", i ? ", " : "", mx[i]);
    printf("%s(%s)\n", nmx ? " " : "", look.status);
    printf("provider:     %s\n", provider ? provider : "(none matched)");
    printf("shared with:  %s%s\n", provider ? "provider:" : "mx:", provider ? provider : site);
    printf("rules file:   %s\n\n", cfg.shaping_file ? cfg.shaping_file : "(none: configuration only)");
    shaping_explain(&lim, &prov, stdout);
    rc = CLI_EX_OK;
out:
    if (rules)
        shaping_free(rules);
    config_fini(&cfg);
    return rc;
}
