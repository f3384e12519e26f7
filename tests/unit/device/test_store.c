/*
 * The state directory: files are replaced durably (a crash before the
 * rename leaves the old content, after it the new one, and the temp file
 * is swept at the next open), recovery keeps exactly the current identity
 * and a resumable pending one, one process at a time, reset keeps the
 * factory key and claim, a stored PKCS#11 URI carries no PIN, and a JITP
 * install that cannot connect leaves the device unprovisioned with the
 * attempts spaced by the backoff and bounded.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/util.h"
#include "device/dev.h"
#include "helpers.h"

static char sdir[600];
static int sdir_n;

/* A fresh state dir per test. */
static int setup(void **state)
{
	(void)state;
	snprintf(sdir, sizeof(sdir), "%s", th_path(""));
	snprintf(sdir + strlen(sdir), sizeof(sdir) - strlen(sdir), "state-%d", ++sdir_n);
	return mkdir(sdir, 0700);
}

static const char *sp(const char *name)
{
	static char b[4][800];
	static int i;
	char *p = b[i++ % 4];

	snprintf(p, 800, "%s/%s", sdir, name);
	return p;
}

static int exists(const char *name)
{
	struct stat st;

	return stat(sp(name), &st) == 0;
}

static char *slurp(const char *name)
{
	char *data = NULL;
	size_t len;

	assert_int_equal(util_read_file(sp(name), 1 << 20, &data, &len, NULL), IOTP_OK);
	return data;
}

static void put(const char *name, const char *text, mode_t mode)
{
	assert_int_equal(util_write_file(sp(name), text, strlen(text), mode, NULL), IOTP_OK);
}

static int count_tmp(void)
{
	DIR *d = opendir(sdir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".tmp") != NULL;
	closedir(d);
	return n;
}

static void test_durable_write(void **state)
{
	struct stat st;
	char *s;

	(void)state;
	assert_int_equal(dev_write_durable(sdir, "f.json", "x", "one", 3, 0600, NULL), IOTP_OK);
	assert_int_equal(dev_write_durable(sdir, "f.json", "x", "two!", 4, 0640, NULL), IOTP_OK);
	s = slurp("f.json");
	assert_string_equal(s, "two!");
	free(s);
	assert_int_equal(stat(sp("f.json"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(count_tmp(), 0);
}

/* Runs a child that writes "new" over f.json with IOTP_DEVICE_CRASH_AT set. */
static int crash_child(const char *at)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("IOTP_DEVICE_CRASH_AT", at, 1);
		dev_crash_reload();
		dev_write_durable(sdir, "f.json", "meta", "first", 5, 0600, NULL);
		dev_write_durable(sdir, "f.json", "meta", "new", 3, 0600, NULL);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_crash_seam(void **state)
{
	iotp_device *d = NULL;
	char *s;

	(void)state;
	/* Killed with the second temp file written but not renamed: the
	 * first content stands, the temp file is left behind... */
	assert_int_equal(crash_child("meta.tmp#2"), DEV_CRASH_EXIT);
	s = slurp("f.json");
	assert_string_equal(s, "first");
	free(s);
	assert_int_equal(count_tmp(), 1);
	/* ...and swept by the next open. */
	assert_int_equal(iotp_device_open(sdir, &d, NULL), IOTP_OK);
	iotp_device_close(d);
	assert_int_equal(count_tmp(), 0);
	/* Killed after the rename: the new content is there, whole. */
	assert_int_equal(crash_child("meta.renamed#2"), DEV_CRASH_EXIT);
	s = slurp("f.json");
	assert_string_equal(s, "new");
	free(s);
	/* A step that is never reached does not fire. */
	assert_int_equal(crash_child("nowhere"), 0);
}

/* A real certificate for a new key, as id-<n>.crt and the key file. */
static void make_identity(int n, const char *stage, const char *token, const char *key_uri)
{
	iotp_keystore *ks = NULL;
	char name[64], *pem;
	json_t *meta;
	char *text;

	assert_int_equal(iotp_keystore_generate_memory(IOTP_KEY_EC_P256, &ks, NULL), IOTP_OK);
	if (strncmp(key_uri, "file:", 5) == 0)
		assert_int_equal(iotp_keystore_save(ks, sp(key_uri + 5), NULL), IOTP_OK);
	pem = th_issue(iotp_keystore_pkey(ks), "stored-device");
	snprintf(name, sizeof(name), "id-%d.crt", n);
	put(name, pem, 0644);
	meta = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "n", n, "method", "claim", "stage", stage,
	                 "keyUri", key_uri, "thingName", "thing-1", "clientId", "thing-1", "certId",
	                 "abc");
	if (token != NULL)
		json_object_set_new(meta, "token", json_string(token));
	text = json_dumps(meta, 0);
	snprintf(name, sizeof(name), "id-%d.json", n);
	put(name, text, 0600);
	free(text);
	json_decref(meta);
	free(pem);
	iotp_keystore_free(ks);
}

static void test_recovery(void **state)
{
	iotp_device *d = NULL;
	struct iotp_device_status st;
	struct iotp_err err;

	(void)state;
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	assert_int_equal(iotp_device_keygen(d, NULL, IOTP_KEY_EC_P256, &err), IOTP_OK);
	iotp_device_close(d);
	/* current 1 (registered), pending 2 killed before its certificate
	 * (stage new: only a key), orphan 3 (never announced), a stray temp. */
	make_identity(1, "registered", NULL, "file:key-1.pem");
	make_identity(2, "new", NULL, "file:key-2.pem");
	assert_int_equal(unlink(sp("id-2.crt")), 0);
	make_identity(3, "created", "tok", "file:key-3.pem");
	put(".id-1.json.tmpAbC123", "half", 0600);
	put("state.json", "{\"current\":1,\"pending\":2}", 0600);
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	assert_int_equal(iotp_device_status(d, &st, &err), IOTP_OK);
	assert_int_equal(st.provisioned, 1);
	assert_int_equal(st.pending, 0);
	assert_string_equal(st.thing_name, "thing-1");
	assert_string_equal(st.key_uri, "file:key-1.pem");
	assert_true(st.not_after > st.not_before);
	iotp_device_close(d);
	assert_true(exists("id-1.json") && exists("id-1.crt") && exists("key-1.pem"));
	assert_false(exists("id-2.json") || exists("key-2.pem"));
	assert_false(exists("id-3.json") || exists("id-3.crt") || exists("key-3.pem"));
	assert_true(exists("factory.key"));
	assert_int_equal(count_tmp(), 0);
	{
		char *s = slurp("state.json");
		json_t *j = json_loads(s, 0, NULL);

		assert_int_equal(json_integer_value(json_object_get(j, "pending")), 0);
		assert_int_equal(json_integer_value(json_object_get(j, "current")), 1);
		json_decref(j);
		free(s);
	}
	/* A pending identity with its certificate and token survives: the next
	 * provision resumes it. Without the token it cannot, and goes. */
	make_identity(2, "created", "tok-2", "factory");
	put("state.json", "{\"current\":1,\"pending\":2}", 0600);
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	assert_int_equal(iotp_device_status(d, &st, &err), IOTP_OK);
	assert_int_equal(st.pending, 1);
	iotp_device_close(d);
	assert_true(exists("id-2.json") && exists("id-2.crt"));
	make_identity(2, "created", NULL, "factory");
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	assert_int_equal(iotp_device_status(d, &st, &err), IOTP_OK);
	assert_int_equal(st.pending, 0);
	iotp_device_close(d);
	/* The factory key is never removed with an identity that used it. */
	assert_false(exists("id-2.json"));
	assert_true(exists("factory.key"));
}

static void test_lock_and_reset(void **state)
{
	iotp_device *d = NULL, *d2 = NULL;
	struct iotp_device_status st;
	struct iotp_err err;

	(void)state;
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	/* One process (or handle) at a time. */
	assert_int_equal(iotp_device_open(sdir, &d2, &err), IOTP_ERR_BUSY);
	assert_int_equal(iotp_device_keygen(d, NULL, IOTP_KEY_EC_P256, &err), IOTP_OK);
	assert_int_equal(iotp_device_keygen(d, NULL, IOTP_KEY_EC_P256, &err), IOTP_ERR_EXISTS);
	iotp_device_close(d);
	put("claim.crt", "claim", 0644);
	put("claim.key", "claim key", 0600);
	make_identity(4, "registered", NULL, "file:key-4.pem");
	make_identity(5, "registered", NULL, "file:key-4.pem"); /* a rotation, same key */
	put("state.json", "{\"current\":4,\"pending\":5}", 0600);
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	assert_int_equal(iotp_device_reset(d, &err), IOTP_OK);
	assert_int_equal(iotp_device_status(d, &st, &err), IOTP_OK);
	assert_int_equal(st.provisioned, 0);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.key_present, 1);
	assert_int_equal(st.has_claim, 1);
	assert_string_equal(st.key_uri, "file:factory.key");
	iotp_device_close(d);
	assert_false(exists("id-4.json") || exists("id-5.json") || exists("id-4.crt") ||
	             exists("key-4.pem"));
	assert_true(exists("factory.key") && exists("claim.crt") && exists("claim.key") &&
	            exists("device.json"));
}

static void test_pkcs11_uri_stored_without_pin(void **state)
{
	iotp_device *d = NULL;
	iotp_keystore *ks = NULL;
	struct iotp_device_status st;
	struct iotp_err err;
	char *conf;

	(void)state;
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	assert_int_equal(iotp_device_keygen(d, th_p11("factory"), IOTP_KEY_EC_P256, &err), IOTP_OK);
	conf = slurp("device.json");
	assert_non_null(strstr(conf, "pkcs11:token=dev;object=factory"));
	assert_null(strstr(conf, TH_PIN));
	free(conf);
	/* Later uses take the PIN from the environment. */
	setenv("IOTP_PKCS11_PIN", TH_PIN, 1);
	assert_int_equal(iotp_device_factory_key(d, &ks, &err), IOTP_OK);
	assert_int_equal(iotp_device_status(d, &st, &err), IOTP_OK);
	assert_int_equal(st.key.backend, IOTP_KEYSTORE_PKCS11);
	assert_int_equal(st.key.extractable, 0);
	assert_int_equal(st.key.sensitive, 1);
	unsetenv("IOTP_PKCS11_PIN");
	iotp_keystore_free(ks);
	iotp_device_close(d);
}

static int attempts;

static void count_attempts(void *ud, const char *line)
{
	(void)ud;
	if (strstr(line, "failed (network)") != NULL)
		attempts++;
}

static void test_jitp_backoff_refused(void **state)
{
	iotp_device *d = NULL;
	iotp_keystore *ks = NULL, *other = NULL;
	struct iotp_device_opts o;
	struct iotp_device_status st;
	struct iotp_failure why;
	struct iotp_err err;
	char *cert, *wrong;
	int64_t t0, ms;
	char ep[64];
	int fd;

	(void)state;
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	assert_int_equal(iotp_device_keygen(d, NULL, IOTP_KEY_EC_P256, &err), IOTP_OK);
	assert_int_equal(iotp_device_factory_key(d, &ks, &err), IOTP_OK);
	cert = th_issue(iotp_keystore_pkey(ks), "jitp-device");
	th_write("jitp.crt", cert, 0644);
	assert_int_equal(iotp_keystore_generate_memory(IOTP_KEY_EC_P256, &other, &err), IOTP_OK);
	wrong = th_issue(iotp_keystore_pkey(other), "someone-else");
	th_write("wrong.crt", wrong, 0644);
	/* A port with nobody behind it: bound, never listening. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	{
		struct sockaddr_in a;
		socklen_t al = sizeof(a);

		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		getsockname(fd, (struct sockaddr *)&a, &al);
		snprintf(ep, sizeof(ep), "127.0.0.1:%d", ntohs(a.sin_port));
		memset(&o, 0, sizeof(o));
		o.endpoint = ep;
		o.ca_file = th_path("ca.pem");
		o.cert_file = th_path("wrong.crt");
		/* A certificate for another key is refused before anything. */
		assert_int_equal(iotp_device_provision(d, IOTP_METHOD_JITP, &o, &why, &err),
		                 IOTP_ERR_CERT);
		assert_int_equal(why.cause, IOTP_CAUSE_LOCAL);
		o.cert_file = th_path("jitp.crt");
		o.retries = 3;
		o.backoff_base_ms = 100;
		o.backoff_cap_ms = 150;
		o.progress = count_attempts;
		t0 = util_mono_ms();
		assert_int_equal(iotp_device_provision(d, IOTP_METHOD_JITP, &o, &why, &err), IOTP_ERR_IO);
		ms = util_mono_ms() - t0;
	}
	close(fd);
	/* Four tries, three waits of at most 100, 150, 150 ms. */
	assert_int_equal(why.cause, IOTP_CAUSE_NETWORK);
	assert_int_equal(attempts, 3);
	assert_true(ms < 400 + 1000);
	/* Not current until it has connected; kept pending for the next try. */
	assert_int_equal(iotp_device_status(d, &st, &err), IOTP_OK);
	assert_int_equal(st.provisioned, 0);
	assert_int_equal(st.pending, 1);
	assert_int_equal(iotp_device_connect(d, &o, &why, &err), IOTP_ERR_IO);
	assert_int_equal(why.cause, IOTP_CAUSE_NETWORK);
	/* Fleet provisioning against nobody: the exchange itself is retried
	 * (it is transient), bounded, and leaves no half identity behind. */
	assert_int_equal(iotp_device_reset(d, &err), IOTP_OK);
	th_write("claim.key", "", 0600);
	assert_int_equal(iotp_keystore_save(other, th_path("claim.key"), &err), IOTP_OK);
	o.cert_file = NULL;
	o.claim_cert = th_path("wrong.crt");
	o.claim_key = th_path("claim.key");
	o.template_name = "Tpl";
	o.retries = 2;
	attempts = 0;
	assert_int_equal(iotp_device_provision(d, IOTP_METHOD_CLAIM, &o, &why, &err), IOTP_ERR_IO);
	assert_int_equal(why.cause, IOTP_CAUSE_NETWORK);
	assert_int_equal(attempts, 2);
	iotp_device_close(d);
	assert_int_equal(iotp_device_open(sdir, &d, &err), IOTP_OK);
	assert_int_equal(iotp_device_status(d, &st, &err), IOTP_OK);
	assert_int_equal(st.provisioned, 0);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.has_claim, 1);
	iotp_device_close(d);
	iotp_keystore_free(ks);
	iotp_keystore_free(other);
	free(cert);
	free(wrong);
}

const struct CMUnitTest th_store_tests[] = {
	cmocka_unit_test_setup(test_durable_write, setup),
	cmocka_unit_test_setup(test_crash_seam, setup),
	cmocka_unit_test_setup(test_recovery, setup),
	cmocka_unit_test_setup(test_lock_and_reset, setup),
	cmocka_unit_test_setup(test_pkcs11_uri_stored_without_pin, setup),
	cmocka_unit_test_setup(test_jitp_backoff_refused, setup),
};
const size_t th_store_count = sizeof(th_store_tests) / sizeof(th_store_tests[0]);
