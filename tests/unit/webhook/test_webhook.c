/*
 * unit.webhook: the libcurl pre-provisioning hook caller (net/webhook.h)
 * against a real hook server on 127.0.0.1 started by the test, alone and
 * through prov_register_thing: allow, deny, overrides, timeout, 500,
 * garbage, oversized and redirected answers, a signature the receiver
 * refuses, HTTPS with the right and the wrong CA, the secret file, and a
 * slow hook that must not hold up a request on another thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "core/pki.h"
#include "net/webhook.h"
#include "../provision/helpers.h"
#include "hookserver.h"

#define SECRET "0123456789abcdef-test-secret"

struct wfx {
	struct fx *f;
	struct hookserver http;
	struct webhook *w;
	struct prov_hook hook;
};

static int setup(void **state)
{
	struct wfx *w = calloc(1, sizeof(*w));
	void *fs = NULL;
	struct iotp_err err;

	assert_non_null(w);
	fx_setup(&fs);
	w->f = fs;
	assert_int_equal(hookserver_start(&w->http, SECRET, NULL, NULL), 0);
	assert_int_equal(webhook_new_secret(SECRET, strlen(SECRET), NULL, &w->w, &err), IOTP_OK);
	webhook_prov_hook(w->w, &w->hook);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct wfx *w = *state;
	void *fs = w->f;

	hookserver_stop(&w->http);
	webhook_free(w->w);
	fx_teardown(&fs);
	free(w);
	return 0;
}

static void url(const struct hookserver *s, const char *path, char *out, size_t size)
{
	snprintf(out, size, "%s://127.0.0.1:%d%s", s->tls != NULL ? "https" : "http", s->port,
	         path);
}

static int requests(struct hookserver *s)
{
	int n;

	pthread_mutex_lock(&s->lock);
	n = s->requests;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static int64_t ms_since(int64_t t0)
{
	return util_mono_ms() - t0;
}

/* ---- signing and the secret ---- */

static void sign_vector(void **state)
{
	char sig[68];
	struct iotp_err err;

	(void)state;
	/* Computed independently: python3 hmac.new(SECRET, b"1700000000." + body, sha256). */
	assert_int_equal(webhook_sign(SECRET, strlen(SECRET), 1700000000, "{\"hello\":\"world\"}",
	                              17, sig, &err),
	                 IOTP_OK);
	assert_string_equal(sig, "v1=433244eaa6b4323816000525a7f2870a196b966b472905070794c1533add8f11");
}

static void secret_file(void **state)
{
	struct wfx *w = *state;
	struct fx *f = w->f;
	struct webhook *a = NULL, *b = NULL;
	struct iotp_err err;
	struct stat st;
	char path[600], *text = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/hook-secret", f->dir);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(webhook_new(&f->conf, &a, &err), IOTP_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(util_read_file(path, 4096, &text, &len, &err), IOTP_OK);
	assert_int_equal(len, 65);
	assert_int_equal(strspn(text, "0123456789abcdef"), 64);
	/* A second process reads the same secret. */
	assert_int_equal(webhook_new(&f->conf, &b, &err), IOTP_OK);
	webhook_free(b);
	b = NULL;
	assert_int_equal(webhook_new_secret(text, 64, NULL, &b, &err), IOTP_OK);
	{
		char u[128];
		json_t *ans = NULL;
		struct hookserver v;

		/* Both sign alike: a server holding the file's secret accepts them. */
		text[64] = '\0';
		assert_int_equal(hookserver_start(&v, text, NULL, NULL), 0);
		url(&v, "/verify", u, sizeof(u));
		assert_int_equal(webhook_call(a, u, "{}", 2000, &ans, &err), IOTP_OK);
		json_decref(ans);
		assert_int_equal(webhook_call(b, u, "{}", 2000, &ans, &err), IOTP_OK);
		json_decref(ans);
		hookserver_stop(&v);
	}
	webhook_free(a);
	webhook_free(b);
	free(text);
	/* Readable by others: refused. Too short: refused. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(webhook_new(&f->conf, &a, &err), IOTP_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "chmod"));
	assert_int_equal(util_write_file(path, "short\n", 6, 0600, &err), IOTP_OK);
	assert_int_equal(webhook_new(&f->conf, &a, &err), IOTP_ERR_CONFIG);
	assert_int_equal(webhook_new_secret("short", 5, NULL, &a, &err), IOTP_ERR_CONFIG);
}

static void answer_parse(void **state)
{
	struct iotp_err err;
	json_t *j = NULL;
	char big[WEBHOOK_ANSWER_MAX + 2];
	const struct {
		const char *body;
		iotp_rc rc;
	} cases[] = {
		{"{\"allowProvisioning\": true}", IOTP_OK},
		{"{}", IOTP_OK},
		{"[]", IOTP_ERR_INVALID},
		{"true", IOTP_ERR_INVALID},
		{"", IOTP_ERR_INVALID},
		{"{\"a\": 1, \"a\": 2}", IOTP_ERR_INVALID},
		{"{\"a\": 1} trailing", IOTP_ERR_INVALID},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		iotp_rc rc = webhook_answer_parse(cases[i].body, strlen(cases[i].body), &j, &err);

		if (rc != cases[i].rc)
			fail_msg("'%s': %d", cases[i].body, rc);
		if (rc == IOTP_OK)
			json_decref(j);
	}
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 1] = '}';
	assert_int_equal(webhook_answer_parse(big, sizeof(big), &j, &err), IOTP_ERR_TOO_BIG);
}

/* ---- calls ---- */

static void call_results(void **state)
{
	struct wfx *w = *state;
	struct iotp_err err;
	json_t *ans = NULL;
	char u[128], want[68];
	int64_t t0;
	const struct {
		const char *path;
		iotp_rc rc;
	} cases[] = {
		{"/deny", IOTP_OK},          /* a well-formed answer: the engine decides */
		{"/500", IOTP_ERR_IO},       {"/garbage", IOTP_ERR_INVALID},
		{"/big", IOTP_ERR_TOO_BIG},  {"/redirect", IOTP_ERR_IO},
		{"/nowhere", IOTP_ERR_IO},
	};

	url(&w->http, "/allow", u, sizeof(u));
	assert_int_equal(webhook_call(w->w, u, "{\"x\":1}", 2000, &ans, &err), IOTP_OK);
	assert_true(json_is_true(json_object_get(ans, "allowProvisioning")));
	json_decref(ans);
	/* What the receiver saw: the body, its type, a fresh timestamp, the
	 * signature over both. */
	assert_string_equal(w->http.last_body, "{\"x\":1}");
	assert_string_equal(w->http.last_ctype, "application/json");
	assert_true(llabs(strtoll(w->http.last_ts, NULL, 10) - (long long)time(NULL)) <= 2);
	assert_int_equal(webhook_sign(SECRET, strlen(SECRET), strtoll(w->http.last_ts, NULL, 10),
	                              "{\"x\":1}", 7, want, &err),
	                 IOTP_OK);
	assert_string_equal(w->http.last_sig, want);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		iotp_rc rc;

		url(&w->http, cases[i].path, u, sizeof(u));
		rc = webhook_call(w->w, u, "{}", 2000, &ans, &err);
		if (rc != cases[i].rc)
			fail_msg("%s: %d (%s)", cases[i].path, rc, err.msg);
		if (rc == IOTP_OK)
			json_decref(ans);
	}
	assert_int_equal(requests(&w->http), 7); /* the redirect was not followed */

	/* No answer in time. */
	url(&w->http, "/sleep/3000", u, sizeof(u));
	t0 = util_mono_ms();
	assert_int_equal(webhook_call(w->w, u, "{}", 300, &ans, &err), IOTP_ERR_TIMEOUT);
	assert_true(ms_since(t0) < 2000);
	/* Nobody listening. */
	{
		struct hookserver gone;

		assert_int_equal(hookserver_start(&gone, SECRET, NULL, NULL), 0);
		url(&gone, "/allow", u, sizeof(u));
		hookserver_stop(&gone);
		assert_int_equal(webhook_call(w->w, u, "{}", 1000, &ans, &err), IOTP_ERR_IO);
	}
	/* Plain http elsewhere than loopback is refused before any I/O. */
	assert_int_equal(webhook_call(w->w, "http://192.0.2.1/hook", "{}", 1000, &ans, &err),
	                 IOTP_ERR_INVALID);

	/* A notification: any 2xx is delivered whatever its body; the same
	 * signed request; errors as for a call. */
	url(&w->http, "/garbage", u, sizeof(u));
	assert_int_equal(webhook_notify(w->w, u, "{\"ev\":2}", 2000, &err), IOTP_OK);
	assert_string_equal(w->http.last_body, "{\"ev\":2}");
	assert_int_equal(webhook_sign(SECRET, strlen(SECRET), strtoll(w->http.last_ts, NULL, 10),
	                              "{\"ev\":2}", 8, want, &err),
	                 IOTP_OK);
	assert_string_equal(w->http.last_sig, want);
	url(&w->http, "/500", u, sizeof(u));
	assert_int_equal(webhook_notify(w->w, u, "{}", 2000, &err), IOTP_ERR_IO);
	assert_non_null(strstr(err.msg, "HTTP 500"));
	url(&w->http, "/redirect", u, sizeof(u));
	assert_int_equal(webhook_notify(w->w, u, "{}", 2000, &err), IOTP_ERR_IO);
	url(&w->http, "/sleep/3000", u, sizeof(u));
	assert_int_equal(webhook_notify(w->w, u, "{}", 300, &err), IOTP_ERR_TIMEOUT);
	assert_int_equal(webhook_notify(w->w, "http://192.0.2.1/hook", "{}", 1000, &err),
	                 IOTP_ERR_INVALID);
}

/* ---- through the provisioning engine ---- */

struct device {
	char claim[65];
	struct prov_new_cert nc;
};

static void new_device(struct fx *f, struct device *d)
{
	struct prov_claimant who = {0};

	memset(d, 0, sizeof(*d));
	fx_claimant(f, d->claim);
	who.cert_id = d->claim;
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &d->nc, &f->err),
	                 IOTP_OK);
}

static iotp_rc provision(struct iotp_core *core, struct device *d, const char *tmpl,
                         const struct prov_hook *hook, char *thing, size_t size,
                         struct iotp_err *err)
{
	struct prov_claimant who = {d->claim, "client"};
	struct prov_result r = {0};
	json_t *p = json_pack("{s:s}", "SerialNumber", tmpl);
	iotp_rc rc = prov_register_thing(core, &who, tmpl, d->nc.token, p, hook, &r, err);

	if (rc == IOTP_OK && thing != NULL)
		snprintf(thing, size, "%s", r.thing_name);
	prov_result_cleanup(&r);
	json_decref(p);
	return rc;
}

static void hooked_template(struct wfx *w, const char *name, struct hookserver *s,
                            const char *path)
{
	char u[128];
	json_t *hook;

	url(s, path, u, sizeof(u));
	hook = json_pack("{s:s}", "targetArn", u);
	fx_template(w->f, name, "FLEET_PROVISIONING", 1, FX_FLEET_BODY, hook);
	json_decref(hook);
}

static void engine(void **state)
{
	struct wfx *w = *state;
	struct fx *f = w->f;
	struct device d;
	struct webhook *wrong = NULL;
	struct prov_hook wrong_hook;
	char thing[130];
	const char *refusing[] = {"deny", "p500", "garbage", "big", "redirect", "slow"};
	int64_t t0;

	fx_group(f, "fleet");
	fx_policy(f, "fleet-policy");
	hooked_template(w, "allow", &w->http, "/allow");
	hooked_template(w, "override", &w->http, "/override");
	hooked_template(w, "deny", &w->http, "/deny");
	hooked_template(w, "p500", &w->http, "/500");
	hooked_template(w, "garbage", &w->http, "/garbage");
	hooked_template(w, "big", &w->http, "/big");
	hooked_template(w, "redirect", &w->http, "/redirect");
	hooked_template(w, "slow", &w->http, "/sleep/3000");
	hooked_template(w, "verify", &w->http, "/verify");
	f->conf.prov_hook_timeout_ms = 500;

	new_device(f, &d);
	for (size_t i = 0; i < sizeof(refusing) / sizeof(refusing[0]); i++) {
		t0 = util_mono_ms();
		if (provision(&f->core, &d, refusing[i], &w->hook, NULL, 0, &f->err) !=
		    IOTP_ERR_DENIED)
			fail_msg("template %s was not refused", refusing[i]);
		assert_true(ms_since(t0) < 2500); /* the timeout holds */
	}
	/* Refusals consumed nothing: the same token provisions through an
	 * allowing hook, and the hook's override wins over the device. */
	assert_int_equal(provision(&f->core, &d, "override", &w->hook, thing, sizeof(thing),
	                           &f->err),
	                 IOTP_OK);
	assert_string_equal(thing, "dev-HOOK");
	{
		json_t *seen = json_loads(w->http.last_body, 0, NULL);

		assert_non_null(seen);
		assert_string_equal(json_string_value(json_object_get(seen, "certificateId")),
		                    d.nc.cert_id);
		assert_string_equal(json_string_value(json_object_get(seen, "claimCertificateId")),
		                    d.claim);
		assert_string_equal(json_string_value(json_object_get(seen, "clientId")), "client");
		assert_string_equal(
			json_string_value(json_object_get(json_object_get(seen, "parameters"),
			                                  "SerialNumber")),
			"override");
		json_decref(seen);
	}
	prov_new_cert_cleanup(&d.nc);

	/* The receiver checks our signature: a caller with another secret is
	 * refused by it, and the provisioning with it (fail closed). */
	new_device(f, &d);
	assert_int_equal(webhook_new_secret("another-secret-of-ours", 22, NULL, &wrong, &f->err),
	                 IOTP_OK);
	webhook_prov_hook(wrong, &wrong_hook);
	assert_int_equal(provision(&f->core, &d, "verify", &wrong_hook, NULL, 0, &f->err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(provision(&f->core, &d, "verify", &w->hook, thing, sizeof(thing),
	                           &f->err),
	                 IOTP_OK);
	assert_string_equal(thing, "dev-verify");
	webhook_free(wrong);
	prov_new_cert_cleanup(&d.nc);

	new_device(f, &d);
	assert_int_equal(provision(&f->core, &d, "allow", &w->hook, thing, sizeof(thing), &f->err),
	                 IOTP_OK);
	assert_string_equal(thing, "dev-allow");
	prov_new_cert_cleanup(&d.nc);
}

/* ---- a slow hook and another request at the same time ---- */

struct slow_call {
	struct wfx *w;
	struct device *d;
	iotp_rc rc;
	int64_t done_ms;
};

static void *slow_thread(void *ud)
{
	struct slow_call *c = ud;
	struct iotp_core core;
	struct iotp_err err;

	fx_core_open(c->w->f, &core);
	c->rc = provision(&core, c->d, "slow", &c->w->hook, NULL, 0, &err);
	c->done_ms = util_mono_ms();
	core_close(&core);
	return NULL;
}

static void slow_hook_does_not_block(void **state)
{
	struct wfx *w = *state;
	struct fx *f = w->f;
	struct device slow_dev, fast_dev;
	struct slow_call c = {0};
	pthread_t t;
	char thing[130];
	int64_t t0, fast_done;

	fx_group(f, "fleet");
	fx_policy(f, "fleet-policy");
	hooked_template(w, "slow", &w->http, "/sleep/1500");
	hooked_template(w, "fast", &w->http, "/allow");
	new_device(f, &slow_dev);
	new_device(f, &fast_dev);
	c.w = w;
	c.d = &slow_dev;
	t0 = util_mono_ms();
	assert_int_equal(pthread_create(&t, NULL, slow_thread, &c), 0);
	/* Let the slow call reach its hook, then provision another device. */
	while (requests(&w->http) == 0 && ms_since(t0) < 1000)
		usleep(5000);
	assert_int_equal(provision(&f->core, &fast_dev, "fast", &w->hook, thing, sizeof(thing),
	                           &f->err),
	                 IOTP_OK);
	fast_done = util_mono_ms();
	pthread_join(t, NULL);
	assert_int_equal(c.rc, IOTP_OK);
	assert_string_equal(thing, "dev-fast");
	assert_true(fast_done - t0 < 1000);  /* did not wait for the slow hook */
	assert_true(c.done_ms - t0 >= 1500); /* which really was slow */
	assert_true(fast_done < c.done_ms);
	prov_new_cert_cleanup(&slow_dev.nc);
	prov_new_cert_cleanup(&fast_dev.nc);
}

/* ---- HTTPS ---- */

static void https(void **state)
{
	struct wfx *w = *state;
	struct fx *f = w->f;
	struct pki_ca ca, other;
	struct hookserver tls;
	struct webhook *trusting = NULL, *stranger = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char ca_path[600], other_path[600], u[128], *pem;
	json_t *ans = NULL;

	fx_make_root("Hook CA", &ca);
	fx_make_root("Other CA", &other);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &f->err), IOTP_OK);
	assert_int_equal(pki_server_cert_create(&ca, key, "127.0.0.1", 1, &cert, &f->err), IOTP_OK);
	snprintf(ca_path, sizeof(ca_path), "%s/hook-ca.pem", f->dir);
	snprintf(other_path, sizeof(other_path), "%s/other-ca.pem", f->dir);
	pem = fx_cert_pem(ca.cert);
	assert_int_equal(util_write_file(ca_path, pem, strlen(pem), 0644, &f->err), IOTP_OK);
	free(pem);
	pem = fx_cert_pem(other.cert);
	assert_int_equal(util_write_file(other_path, pem, strlen(pem), 0644, &f->err), IOTP_OK);
	free(pem);
	assert_int_equal(hookserver_start(&tls, SECRET, cert, key), 0);
	assert_int_equal(webhook_new_secret(SECRET, strlen(SECRET), ca_path, &trusting, &f->err),
	                 IOTP_OK);
	assert_int_equal(webhook_new_secret(SECRET, strlen(SECRET), other_path, &stranger,
	                                    &f->err),
	                 IOTP_OK);
	url(&tls, "/verify", u, sizeof(u));
	assert_int_equal(webhook_call(trusting, u, "{\"tls\":true}", 3000, &ans, &f->err), IOTP_OK);
	assert_true(json_is_true(json_object_get(ans, "allowProvisioning")));
	json_decref(ans);
	assert_int_equal(webhook_call(stranger, u, "{}", 3000, &ans, &f->err), IOTP_ERR_IO);
	hookserver_stop(&tls);
	webhook_free(trusting);
	webhook_free(stranger);
	X509_free(cert);
	EVP_PKEY_free(key);
	pki_ca_cleanup(&ca);
	pki_ca_cleanup(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sign_vector),
		cmocka_unit_test_setup_teardown(secret_file, setup, teardown),
		cmocka_unit_test(answer_parse),
		cmocka_unit_test_setup_teardown(call_results, setup, teardown),
		cmocka_unit_test_setup_teardown(engine, setup, teardown),
		cmocka_unit_test_setup_teardown(slow_hook_does_not_block, setup, teardown),
		cmocka_unit_test_setup_teardown(https, setup, teardown),
	};

	iotp_log_set_level(IOTP_LOG_ERROR);
	return cmocka_run_group_tests_name("webhook", tests, NULL, NULL);
}
