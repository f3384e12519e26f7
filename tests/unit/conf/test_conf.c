/*
 * Unit tests of iotprov.conf handling (src/common/conf.c), from the
 * operator's side: every option of the table is documented in
 * docs/config.md with its real default (and nothing documented is missing
 * from the table); the file `iotprov init` writes loads back to exactly the
 * values it was written from; and every mistake an operator can make in the
 * file is refused with the file, the line and the option named.
 *
 * Needs IOTP_SOURCE_DIR (set by ctest) to find docs/config.md.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/conf.h"
#include "common/util.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/unit-conf-XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	char p[128];

	(void)state;
	snprintf(p, sizeof(p), "%s/iotprov.conf", dir);
	unlink(p);
	return rmdir(dir);
}

static struct iotp_conf *conf_new(void)
{
	struct iotp_conf *c = malloc(sizeof(*c));

	assert_non_null(c);
	conf_init(c, dir);
	return c;
}

/* Writes text to dir/iotprov.conf and loads it over the defaults. */
static iotp_rc load_file(const char *text, struct iotp_err *err, char *path, size_t size)
{
	struct iotp_conf *c = conf_new();
	FILE *f;
	iotp_rc rc;

	snprintf(path, size, "%s/iotprov.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	rc = conf_load(c, path, err);
	free(c);
	return rc;
}

/* ---- docs/config.md ----------------------------------------------------- */

static char *read_docs(void)
{
	const char *src = getenv("IOTP_SOURCE_DIR");
	char path[1024];
	char *text = NULL;
	size_t len;
	struct iotp_err err;

	snprintf(path, sizeof(path), "%s/docs/config.md", src != NULL ? src : ".");
	if (util_read_file(path, 1024 * 1024, &text, &len, &err) != IOTP_OK)
		fail_msg("cannot read docs/config.md (%s): set IOTP_SOURCE_DIR", err.msg);
	return text;
}

/* Calls fn for each option row of the docs: the "## [section]" above it,
 * the option name and its documented default ("(empty)" read as ""). */
static void for_each_doc_row(const char *docs,
                             void (*fn)(void *ud, const char *section, const char *name,
                                        const char *def),
                             void *ud)
{
	char section[64] = "", line[2048];
	const char *p = docs;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);

		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl != NULL ? nl + 1 : p + n;
		if (strncmp(line, "## [", 4) == 0) {
			char *end = strchr(line + 4, ']');

			assert_non_null(end);
			*end = '\0';
			util_strlcpy(section, line + 4, sizeof(section));
		} else if (strncmp(line, "## ", 3) == 0) {
			section[0] = '\0'; /* a section that is not an INI section */
		} else if (section[0] != '\0' && strncmp(line, "| `", 3) == 0) {
			char name[128], def[1024];
			const char *q = line + 3, *e = strchr(q, '`');
			const char *d;

			assert_non_null(e);
			snprintf(name, sizeof(name), "%.*s", (int)(e - q), q);
			d = strstr(e, "| ");
			assert_non_null(d);
			d += 2;
			if (strncmp(d, "(empty)", 7) == 0) {
				def[0] = '\0';
			} else {
				const char *de;

				assert_int_equal(*d, '`');
				de = strchr(d + 1, '`');
				assert_non_null(de);
				snprintf(def, sizeof(def), "%.*s", (int)(de - d - 1), d + 1);
			}
			fn(ud, section, name, def);
		}
	}
}

struct doc_find {
	const struct conf_option_info *o;
	int found;
	char doc_default[1024];
};

static void find_row(void *ud, const char *section, const char *name, const char *def)
{
	struct doc_find *f = ud;

	if (strcmp(section, f->o->section) == 0 && strcmp(name, f->o->name) == 0) {
		f->found++;
		util_strlcpy(f->doc_default, def, sizeof(f->doc_default));
	}
}

/* Every option of the table has one row in its section of docs/config.md,
 * showing the default the code really uses. */
static void test_docs_cover_every_option(void **state)
{
	char *docs = read_docs();
	int missing = 0;

	(void)state;
	for (size_t i = 0; conf_option_at(i) != NULL; i++) {
		struct doc_find f = {conf_option_at(i), 0, ""};

		for_each_doc_row(docs, find_row, &f);
		if (f.found != 1) {
			print_error("docs/config.md: option [%s] %s is %s\n", f.o->section, f.o->name,
			            f.found == 0 ? "not documented (add a row under its ## [section])"
			                         : "documented more than once");
			missing++;
		} else if (strcmp(f.doc_default, f.o->def) != 0) {
			print_error("docs/config.md: [%s] %s: documented default '%s', code has '%s'\n",
			            f.o->section, f.o->name, f.doc_default, f.o->def);
			missing++;
		}
	}
	free(docs);
	assert_int_equal(missing, 0);
}

static void known_row(void *ud, const char *section, const char *name, const char *def)
{
	int *stale = ud;
	int known = 0;

	(void)def;
	for (size_t i = 0; conf_option_at(i) != NULL; i++)
		if (strcmp(conf_option_at(i)->section, section) == 0 &&
		    strcmp(conf_option_at(i)->name, name) == 0)
			known = 1;
	if (!known) {
		print_error("docs/config.md documents [%s] %s, which is not an option\n", section,
		            name);
		(*stale)++;
	}
}

/* And nothing documented is missing from the code. */
static void test_docs_have_no_stale_option(void **state)
{
	char *docs = read_docs();
	int stale = 0;

	(void)state;
	for_each_doc_row(docs, known_row, &stale);
	free(docs);
	assert_int_equal(stale, 0);
}

/* ---- defaults and the generated file ------------------------------------ */

static void test_defaults_validate(void **state)
{
	struct iotp_conf *c = conf_new();
	struct iotp_err err;

	(void)state;
	assert_int_equal(conf_validate(c, &err), IOTP_OK);
	assert_string_equal(c->api_listen, "127.0.0.1:8443");
	assert_string_equal(c->mqtt_listen, "127.0.0.1:8883");
	assert_string_equal(c->region, "us-east-1");
	assert_int_equal(c->api_max_body, 65536);
	free(c);
}

/* The file `iotprov init` writes lists every option commented out with its
 * default, and loads back to the defaults. */
static void test_format_defaults_round_trip(void **state)
{
	struct iotp_conf *a = conf_new(), *b = conf_new();
	struct buf out;
	struct iotp_err err;

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(conf_format_defaults(&out), IOTP_OK);
	for (size_t i = 0; conf_option_at(i) != NULL; i++) {
		const struct conf_option_info *o = conf_option_at(i);
		char want[1200], sec[80];

		snprintf(sec, sizeof(sec), "\n[%s]\n", o->section);
		snprintf(want, sizeof(want), "\n;%s = %s\n", o->name, o->def);
		assert_non_null(strstr(out.data, sec));
		if (strstr(out.data, want) == NULL)
			fail_msg("default file lacks '%s'", want + 1);
	}
	/* conf_format of the defaults is the same text. */
	{
		struct buf again;

		buf_init(&again, 0);
		assert_int_equal(conf_format(a, &again), IOTP_OK);
		assert_string_equal(again.data, out.data);
		buf_cleanup(&again);
	}
	assert_int_equal(conf_load_string(b, out.data, &err), IOTP_OK);
	assert_memory_equal(a, b, sizeof(*a));
	buf_cleanup(&out);
	free(a);
	free(b);
}

/* Changed values are written as active lines and load back unchanged. */
static void test_format_changed_values_round_trip(void **state)
{
	struct iotp_conf *a = conf_new(), *b = conf_new();
	struct buf out;
	struct iotp_err err;

	(void)state;
	util_strlcpy(a->api_listen, "0.0.0.0:9443", sizeof(a->api_listen));
	util_strlcpy(a->pki_key_type, "rsa-2048", sizeof(a->pki_key_type));
	util_strlcpy(a->mqtt_endpoint, "iot.example.com", sizeof(a->mqtt_endpoint));
	util_strlcpy(a->pki_server_names, "localhost,127.0.0.1,::1,iot.example.com",
	             sizeof(a->pki_server_names));
	a->api_max_body = 131072;
	buf_init(&out, 0);
	assert_int_equal(conf_format(a, &out), IOTP_OK);
	assert_non_null(strstr(out.data, "\nlisten = 0.0.0.0:9443\n"));
	assert_non_null(strstr(out.data, "\nmax_body = 131072\n"));
	assert_non_null(strstr(out.data, "# default: 65536\n"));
	assert_non_null(strstr(out.data, "\n;listen = 127.0.0.1:8883\n")); /* [mqtt], unchanged */
	assert_int_equal(conf_load_string(b, out.data, &err), IOTP_OK);
	assert_int_equal(conf_validate(b, &err), IOTP_OK);
	assert_memory_equal(a, b, sizeof(*a));
	buf_cleanup(&out);
	free(a);
	free(b);
}

static void test_comments_and_inline_comments(void **state)
{
	struct iotp_conf *c = conf_new();
	struct iotp_err err;

	(void)state;
	assert_int_equal(conf_load_string(c,
	                                  "; comment\n# another\n\n[api]\n"
	                                  "  max_body = 2048   ; inline comment\n"
	                                  "listen=[::1]:9443\n[service]\nlog_level = debug\n",
	                                  &err),
	                 IOTP_OK);
	assert_int_equal(c->api_max_body, 2048);
	assert_string_equal(c->api_listen, "[::1]:9443");
	assert_string_equal(c->log_level, "debug");
	assert_int_equal(conf_validate(c, &err), IOTP_OK);
	free(c);
}

/* ---- mistakes ------------------------------------------------------------ */

struct bad_case {
	const char *text;
	int line;
	const char *must_contain; /* besides "PATH:LINE:" */
};

static void test_bad_values_name_file_line_and_key(void **state)
{
	static const struct bad_case cases[] = {
		{"[api]\nmax_body = big\n", 2, "[api] max_body: 'big' is not a whole number"},
		{"[api]\nmax_body = 10\n", 2, "[api] max_body: '10' is not a whole number from 1024"},
		{"[api]\ntimeout = -1\n", 2, "[api] timeout"},
		{"[api]\nmax_connections = 5x\n", 2, "[api] max_connections"},
		{"\n[pki]\nkey_type = dsa-1024\n", 3, "[pki] key_type: 'dsa-1024' is not ec-p256"},
		{"[api]\nlisten = nowhere\n", 2, "[api] listen: 'nowhere' is not HOST:PORT"},
		{"[api]\nlisten = 127.0.0.1:70000\n", 2, "[api] listen"},
		{"[mqtt]\nlisten = [::1:8883\n", 2, "[mqtt] listen"},
		{"[service]\nregion = US East\n", 2, "[service] region: 'US East' is not a region"},
		{"[service]\naccount_id = 12345\n", 2, "[service] account_id: '12345' is not 12 digits"},
		{"[service]\nlog_level = loud\n", 2, "[service] log_level: 'loud'"},
		{"[store]\nurl = mysql://db\n", 2, "[store] url: 'mysql://db' must start with sqlite:"},
		{"[mqtt]\njitr_webhook = ftp://h/x\n", 2,
		 "[mqtt] jitr_webhook: 'ftp://h/x' must start with https://"},
		{"[api]\nlistne = 127.0.0.1:1\n", 2, "unknown option [api] listne"},
		{"[apis]\nlisten = 127.0.0.1:1\n", 2, "unknown option [apis] listen"},
		{"listen = 127.0.0.1:1\n", 1, "unknown option [] listen"},
		{"[api]\nmax_body = 2048\nmax_body = 4096\n", 3, "[api] max_body is set a second time"},
		{"[api]\nlisten = 127.0.0.1:1\n  9443\n", 3, "[api] listen is set a second time"},
		{"[api]\nlisten =;127.0.0.1:1\n", 2, "[api] listen: a value cannot start with ';'"},
		{"[api\nlisten = 127.0.0.1:1\n", 1, "syntax error"},
		{"[api]\njust some words\n", 2, "syntax error"},
	};
	char path[256], want[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct iotp_err err;
		iotp_rc rc = load_file(cases[i].text, &err, path, sizeof(path));

		snprintf(want, sizeof(want), "%s:%d: ", path, cases[i].line);
		if (rc != IOTP_ERR_CONFIG || strncmp(err.msg, want, strlen(want)) != 0 ||
		    strstr(err.msg, cases[i].must_contain) == NULL)
			fail_msg("case %zu (%s): rc %d, message '%s'; wanted '%s...%s'", i, cases[i].text,
			         rc, err.msg, want, cases[i].must_contain);
	}
}

/* libinih would cut a long line and read the rest as a line of its own:
 * refused, naming the line. */
static void test_long_line_refused(void **state)
{
	char text[600], path[256], want[300];
	struct iotp_err err;
	int n;

	(void)state;
	n = snprintf(text, sizeof(text), "[pki]\n# fine\nserver_names = localhost");
	while (n < 6 + 7 + 250)
		text[n++] = 'x';
	text[n++] = '\n';
	text[n] = '\0';
	assert_int_equal(load_file(text, &err, path, sizeof(path)), IOTP_ERR_CONFIG);
	snprintf(want, sizeof(want), "%s:3: line longer than 198 characters", path);
	assert_string_equal(err.msg, want);

	/* 198 characters are fine. */
	n = snprintf(text, sizeof(text), "[pki]\nserver_names = ");
	while (n < 6 + 198)
		text[n++] = 'a';
	text[n++] = '\n';
	text[n] = '\0';
	assert_int_equal(load_file(text, &err, path, sizeof(path)), IOTP_OK);
}

static void test_missing_file_is_io_error(void **state)
{
	struct iotp_conf *c = conf_new();
	struct iotp_err err;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/no-such.conf", dir);
	assert_int_equal(conf_load(c, path, &err), IOTP_ERR_IO);
	assert_non_null(strstr(err.msg, path));
	free(c);
}

/* A value set another way (a command-line override) is checked too. */
static void test_validate_catches_overrides(void **state)
{
	struct iotp_conf *c = conf_new();
	struct iotp_err err;

	(void)state;
	util_strlcpy(c->api_listen, "localhost", sizeof(c->api_listen));
	assert_int_equal(conf_validate(c, &err), IOTP_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "[api] listen: 'localhost' is not HOST:PORT"));
	conf_init(c, dir);
	util_strlcpy(c->pki_key_type, "ed25519", sizeof(c->pki_key_type));
	assert_int_equal(conf_validate(c, &err), IOTP_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "[pki] key_type"));
	free(c);
}

static void test_parse_listen(void **state)
{
	char host[64];
	int port = -1;
	struct iotp_err err;

	(void)state;
	assert_int_equal(conf_parse_listen("127.0.0.1:8443", host, sizeof(host), &port, &err),
	                 IOTP_OK);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8443);
	assert_int_equal(conf_parse_listen("[::1]:0", host, sizeof(host), &port, &err), IOTP_OK);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(conf_parse_listen("localhost:65535", host, sizeof(host), &port, &err),
	                 IOTP_OK);
	assert_int_not_equal(conf_parse_listen(":8443", host, sizeof(host), &port, &err), IOTP_OK);
	assert_int_not_equal(conf_parse_listen("host:65536", host, sizeof(host), &port, &err),
	                     IOTP_OK);
	assert_int_not_equal(conf_parse_listen("host:", host, sizeof(host), &port, &err), IOTP_OK);
	assert_int_not_equal(conf_parse_listen("[::1]8443", host, sizeof(host), &port, &err),
	                     IOTP_OK);
	assert_int_not_equal(conf_parse_listen("host", host, sizeof(host), &port, &err), IOTP_OK);
}

static void test_paths_relative_to_data_dir(void **state)
{
	struct iotp_conf *c = conf_new();
	char out[512], want[512];
	struct iotp_err err;

	(void)state;
	assert_int_equal(conf_path(c, "server.crt", out, sizeof(out), &err), IOTP_OK);
	snprintf(want, sizeof(want), "%s/server.crt", dir);
	assert_string_equal(out, want);
	assert_int_equal(conf_path(c, "/etc/iotprov/server.crt", out, sizeof(out), &err), IOTP_OK);
	assert_string_equal(out, "/etc/iotprov/server.crt");
	assert_int_equal(conf_store_url(c, out, sizeof(out), &err), IOTP_OK);
	snprintf(want, sizeof(want), "sqlite:%s/iotprov.db", dir);
	assert_string_equal(out, want);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_docs_cover_every_option),
		cmocka_unit_test(test_docs_have_no_stale_option),
		cmocka_unit_test(test_defaults_validate),
		cmocka_unit_test(test_format_defaults_round_trip),
		cmocka_unit_test(test_format_changed_values_round_trip),
		cmocka_unit_test(test_comments_and_inline_comments),
		cmocka_unit_test(test_bad_values_name_file_line_and_key),
		cmocka_unit_test(test_long_line_refused),
		cmocka_unit_test(test_missing_file_is_io_error),
		cmocka_unit_test(test_validate_catches_overrides),
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_paths_relative_to_data_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
