/*
 * `iotprov things ls`, `iotprov certs ls`, `iotprov cas ls`: the registry's
 * lists through the API (ListThings, ListCertificates, ListCACertificates),
 * every page followed, printed as a table or, with --json, as one JSON
 * object {"<member>": [...all items...]} with the API's member names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/client.h"
#include "cli/iotprov/table.h"
#include "common/buf.h"

/* The options every API verb takes. */
struct api_opts {
	const char *data_dir;
	const char *endpoint_url;
	int json;
};

#define API_OPTS(o) \
	{"data-dir", 0, "DIR", "data directory to reach (default " CLI_DEFAULT_DATA_DIR ")", \
	 &(o).data_dir, NULL}, \
	{"endpoint-url", 0, "URL", "API endpoint; credentials from AWS_* variables", \
	 &(o).endpoint_url, NULL}, \
	{"json", 0, NULL, "print JSON instead of a table", NULL, &(o).json}

#define API_ABOUT_TAIL \
	"\n\nThe API is reached with --data-dir DIR (endpoint from DIR/iotprov.conf,\n" \
	"credentials from DIR/admin-credentials, trust from DIR/ca-bundle.pem) or with\n" \
	"--endpoint-url URL and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and\n" \
	"AWS_CA_BUNDLE. Exit status: 0 ok, 1 failure (explained), 2 bad usage."

/* Fetches every item of a list and prints it: JSON, or a table built by
 * row() (which returns 0, or -1 when out of memory). */
static int list_and_print(const char *command, const struct api_opts *o,
                          const struct client_pager *pager, const struct client_param *extra,
                          size_t nextra, size_t ncols, const char *const *headers,
                          int (*row)(struct table *t, json_t *item), const char *none)
{
	struct api_client c;
	struct iotp_err err;
	json_t *items = NULL;
	struct table *t = NULL;
	int status = CLI_FAIL;

	if (client_open(&c, o->data_dir, o->endpoint_url, &err) != IOTP_OK)
		return cli_fail(command, "%s", err.msg);
	if (client_list_all(&c, pager, extra, nextra, &items, &err) != IOTP_OK) {
		cli_fail(command, "%s", err.msg);
		goto out;
	}
	if (o->json) {
		json_t *doc = json_pack("{s:O}", pager->items_member, items);

		if (doc == NULL || json_dumpf(doc, stdout, JSON_INDENT(2)) != 0) {
			json_decref(doc);
			cli_fail(command, "cannot write the JSON output");
			goto out;
		}
		json_decref(doc);
		putchar('\n');
		status = CLI_OK;
		goto out;
	}
	t = table_new(ncols, headers);
	if (t == NULL) {
		cli_fail(command, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(items); i++) {
		if (row(t, json_array_get(items, i)) != 0) {
			cli_fail(command, "out of memory");
			goto out;
		}
	}
	if (table_rows(t) == 0)
		printf("%s\n", none);
	else
		table_print(t, stdout);
	status = CLI_OK;
out:
	if (fflush(stdout) != 0 && status == CLI_OK)
		status = cli_fail(command, "cannot write the output");
	table_free(t);
	json_decref(items);
	client_close(&c);
	return status;
}

static const char *str_member(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void time_member(json_t *o, const char *name, char *out, size_t size)
{
	json_t *v = json_object_get(o, name);

	if (json_is_number(v))
		cli_time_format(json_number_value(v), out, size);
	else
		snprintf(out, size, "-");
}

/* ---- things ls ---- */

static int thing_row(struct table *t, json_t *item)
{
	char version[32] = "-";
	json_t *attrs = json_object_get(item, "attributes"), *v;
	const char *k;
	struct buf a;
	int rc;

	buf_init(&a, 4096);
	json_object_foreach(attrs, k, v) {
		if (buf_printf(&a, "%s%s=%s", a.len ? "," : "", k,
		               json_is_string(v) ? json_string_value(v) : "?") != IOTP_OK)
			break;
	}
	if (json_is_integer(json_object_get(item, "version")))
		snprintf(version, sizeof(version), "%lld",
		         (long long)json_integer_value(json_object_get(item, "version")));
	{
		const char *cells[] = {str_member(item, "thingName"), str_member(item, "thingTypeName"),
		                       version, a.len ? a.data : "-"};

		rc = table_add(t, cells);
	}
	buf_cleanup(&a);
	return rc;
}

int cmd_things_ls(int argc, char **argv)
{
	struct api_opts o = {0};
	const char *type = NULL, *attr = NULL;
	const struct cli_opt opts[] = {
		API_OPTS(o),
		{"type", 0, "TYPE", "only things of this thing type", &type, NULL},
		{"attribute", 0, "NAME=VALUE", "only things with this attribute value", &attr, NULL},
	};
	const struct cli_spec spec = {
		"things ls", "[--data-dir DIR | --endpoint-url URL] [--type T] [--attribute N=V] [--json]",
		"Lists every thing in the registry (ListThings, all pages): name, thing\n"
		"type, version and attributes." API_ABOUT_TAIL,
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	static const struct client_pager pager = {"ListThings", "/things", "maxResults", "250",
	                                          "nextToken", "things", "nextToken"};
	static const char *const headers[] = {"NAME", "TYPE", "VERSION", "ATTRIBUTES"};
	const char *args[CLI_MAX_ARGS];
	char attr_name[256];
	struct client_param extra[3];
	size_t nextra = 0;
	int nargs, rc;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	if (type != NULL)
		extra[nextra++] = (struct client_param){"thingTypeName", type};
	if (attr != NULL) {
		const char *eq = strchr(attr, '=');

		if (eq == NULL || eq == attr || (size_t)(eq - attr) >= sizeof(attr_name))
			return cli_usage_error(&spec, "--attribute takes NAME=VALUE, not '%s'", attr);
		memcpy(attr_name, attr, (size_t)(eq - attr));
		attr_name[eq - attr] = '\0';
		extra[nextra++] = (struct client_param){"attributeName", attr_name};
		extra[nextra++] = (struct client_param){"attributeValue", eq + 1};
	}
	return list_and_print(spec.command, &o, &pager, extra, nextra, 4, headers, thing_row,
	                      "no things (create one with `aws iot create-thing`)");
}

/* ---- certs ls ---- */

static int cert_row(struct table *t, json_t *item)
{
	char created[32];

	time_member(item, "creationDate", created, sizeof(created));
	{
		const char *cells[] = {str_member(item, "certificateId"), str_member(item, "status"),
		                       str_member(item, "certificateMode"), created};

		return table_add(t, cells);
	}
}

int cmd_certs_ls(int argc, char **argv)
{
	struct api_opts o = {0};
	const struct cli_opt opts[] = {API_OPTS(o)};
	const struct cli_spec spec = {
		"certs ls", "[--data-dir DIR | --endpoint-url URL] [--json]",
		"Lists every device certificate (ListCertificates, all pages, oldest\n"
		"first): id, status, mode and creation date." API_ABOUT_TAIL,
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	static const struct client_pager pager = {"ListCertificates", "/certificates", "pageSize",
	                                          "250", "marker", "certificates", "nextMarker"};
	static const char *const headers[] = {"ID", "STATUS", "MODE", "CREATED"};
	static const struct client_param asc[] = {{"isAscendingOrder", "true"}};
	const char *args[CLI_MAX_ARGS];
	int nargs, rc;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	return list_and_print(spec.command, &o, &pager, asc, 1, 4, headers, cert_row,
	                      "no certificates");
}

/* ---- cas ls ---- */

static int ca_row(struct table *t, json_t *item)
{
	char created[32];

	time_member(item, "creationDate", created, sizeof(created));
	{
		const char *cells[] = {str_member(item, "certificateId"), str_member(item, "status"),
		                       created};

		return table_add(t, cells);
	}
}

int cmd_cas_ls(int argc, char **argv)
{
	struct api_opts o = {0};
	const struct cli_opt opts[] = {API_OPTS(o)};
	const struct cli_spec spec = {
		"cas ls", "[--data-dir DIR | --endpoint-url URL] [--json]",
		"Lists the CA certificates the registry knows (ListCACertificates, all\n"
		"pages, oldest first): iotprov's own root and issuing CAs and the CAs\n"
		"registered for just-in-time provisioning." API_ABOUT_TAIL,
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	static const struct client_pager pager = {"ListCACertificates", "/cacertificates",
	                                          "pageSize", "250", "marker", "certificates",
	                                          "nextMarker"};
	static const char *const headers[] = {"ID", "STATUS", "CREATED"};
	static const struct client_param asc[] = {{"isAscendingOrder", "true"}};
	const char *args[CLI_MAX_ARGS];
	int nargs, rc;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	return list_and_print(spec.command, &o, &pager, asc, 1, 3, headers, ca_row,
	                      "no CA certificates");
}
