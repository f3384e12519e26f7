/*
 * `iotprov commission`: the installer's side of network commissioning. It
 * gets a trusted-user claim from iotprovd (CreateProvisioningClaim, with an
 * installer access key), then runs the session with the device over its web
 * endpoint (--device http://...), its serial console (--device /dev/tty...)
 * or removable media (--device DIR): SPAKE2+ from the setup code, the
 * network (corrected in the same session when the device could not join),
 * the claim, and prints each step until the device's thing name or the
 * reason it has none. The protocol is core/commission.h's; this file only
 * moves lines and talks to a person.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/client.h"
#include "common/util.h"
#include "core/commission.h"

#define CMD "commission"
#define PSK_TRIES_MAX 8

enum link_kind { LINK_HTTP, LINK_SERIAL, LINK_MEDIA };

struct link {
	enum link_kind kind;
	char target[1024];
	CURL *curl;
	int fd;
	struct buf rx;
	int timeout_ms;
};

struct run {
	const char *template_name;
	json_t *params;
	struct commission_claim claim;   /* from iotprovd; empty with --no-claim */
	int have_claim;
	int64_t claim_expiration;
	char psks[PSK_TRIES_MAX][COMMISSION_PSK_MAX + 1];
	int npsk, psk_next;
	int prompt;                      /* ask again on a terminal */
	struct commission_network net;
	int json;
	/* outcome */
	char device[COMMISSION_DEVICE_ID_MAX + 1];
	int joined, provisioned;
	char thing[COMMISSION_THING_MAX + 1], cert_id[65], reason[1400];
};

static int step_no;

static void step(const struct run *r, const char *fmt, ...) IOTP_PRINTF(2, 3);
static void step(const struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->json)
		return;
	printf("[%d] ", ++step_no);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* ---- links ---------------------------------------------------------------- */

static size_t curl_sink(char *p, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;

	return buf_append(b, p, size * n) == IOTP_OK ? size * n : 0;
}

static iotp_rc link_open(struct link *l, const char *device, int timeout_s, struct iotp_err *err)
{
	struct stat st;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->timeout_ms = timeout_s * 1000;
	buf_init(&l->rx, COMMISSION_FILE_MAX);
	if (strncmp(device, "http://", 7) == 0 || strncmp(device, "https://", 8) == 0) {
		size_t n = strlen(device);

		while (n && device[n - 1] == '/')
			n--;
		if (n + sizeof("/api/commission") > sizeof(l->target))
			return iotp_err_set(err, IOTP_ERR_INVALID, "--device URL too long");
		memcpy(l->target, device, n);
		memcpy(l->target + n, "/api/commission", sizeof("/api/commission"));
		l->kind = LINK_HTTP;
		if (!(l->curl = curl_easy_init()))
			return iotp_err_set(err, IOTP_ERR_NOMEM, "curl");
		return IOTP_OK;
	}
	util_strlcpy(l->target, device, sizeof(l->target));
	if (stat(device, &st) != 0)
		return iotp_err_set(err, IOTP_ERR_IO, "--device %s: %s", device, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		l->kind = LINK_MEDIA;
		return IOTP_OK;
	}
	if (!S_ISCHR(st.st_mode))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "--device %s: not a URL, a terminal or a directory", device);
	l->kind = LINK_SERIAL;
	l->fd = open(device, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (l->fd < 0)
		return iotp_err_set(err, IOTP_ERR_IO, "open %s: %s", device, strerror(errno));
	if (isatty(l->fd)) {
		struct termios tio;

		if (tcgetattr(l->fd, &tio) == 0) {
			cfmakeraw(&tio);
			cfsetispeed(&tio, B115200);
			cfsetospeed(&tio, B115200);
			tio.c_cflag |= CLOCAL | CREAD;
			tcsetattr(l->fd, TCSANOW, &tio);
		}
		tcflush(l->fd, TCIOFLUSH);
	}
	return IOTP_OK;
}

static void link_close(struct link *l)
{
	if (l->curl)
		curl_easy_cleanup(l->curl);
	if (l->fd >= 0)
		close(l->fd);
	buf_cleanup_secure(&l->rx);
}

/* Sends one line, receives one reply line into reply (appended). */
static iotp_rc link_xfer(struct link *l, const char *line, struct buf *reply,
                         struct iotp_err *err)
{
	if (l->kind == LINK_HTTP) {
		struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
		long status = 0;
		CURLcode cc;

		curl_easy_reset(l->curl);
		curl_easy_setopt(l->curl, CURLOPT_URL, l->target);
		curl_easy_setopt(l->curl, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(l->curl, CURLOPT_POSTFIELDS, line);
		curl_easy_setopt(l->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(line));
		curl_easy_setopt(l->curl, CURLOPT_WRITEFUNCTION, curl_sink);
		curl_easy_setopt(l->curl, CURLOPT_WRITEDATA, reply);
		curl_easy_setopt(l->curl, CURLOPT_TIMEOUT_MS, (long)l->timeout_ms);
		curl_easy_setopt(l->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(l->curl, CURLOPT_PROTOCOLS_STR, "http,https");
		cc = curl_easy_perform(l->curl);
		curl_slist_free_all(h);
		if (cc != CURLE_OK)
			return iotp_err_set(err, IOTP_ERR_IO, "cannot reach the device at %s: %s",
			                    l->target, curl_easy_strerror(cc));
		curl_easy_getinfo(l->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200)
			return iotp_err_set(err, IOTP_ERR_IO, "the device answered HTTP %ld", status);
		return IOTP_OK;
	}
	/* Serial: write the line, then read up to the reply's newline. */
	{
		size_t len = strlen(line), off = 0;
		int64_t deadline = util_mono_ms() + l->timeout_ms;

		while (off < len + 1) {
			ssize_t w = off < len ? write(l->fd, line + off, len - off) : write(l->fd, "\n", 1);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return iotp_err_set(err, IOTP_ERR_IO, "write %s: %s", l->target,
				                    strerror(errno));
			off += (size_t)w;
		}
		for (;;) {
			char *nl = l->rx.data ? memchr(l->rx.data, '\n', l->rx.len) : NULL;
			struct pollfd p = {l->fd, POLLIN, 0};
			char tmp[4096];
			int64_t left;
			ssize_t r;

			if (nl) {
				size_t n = (size_t)(nl - l->rx.data);
				iotp_rc rc = buf_append(reply, l->rx.data, n);

				memmove(l->rx.data, nl + 1, l->rx.len - n - 1);
				l->rx.len -= n + 1;
				l->rx.data[l->rx.len] = '\0';
				if (n == 0)
					continue; /* a stray empty line */
				return rc == IOTP_OK ? IOTP_OK
				                     : iotp_err_set(err, rc, "reply: %s", iotp_strerror(rc));
			}
			left = deadline - util_mono_ms();
			if (left <= 0)
				return iotp_err_set(err, IOTP_ERR_TIMEOUT, "no reply from %s", l->target);
			if (poll(&p, 1, (int)left) <= 0)
				continue;
			r = read(l->fd, tmp, sizeof(tmp));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return iotp_err_set(err, IOTP_ERR_IO, "read %s: %s", l->target,
				                    r == 0 ? "closed" : strerror(errno));
			if (buf_append(&l->rx, tmp, (size_t)r) != IOTP_OK)
				return iotp_err_set(err, IOTP_ERR_TOO_BIG, "reply too long");
		}
	}
}

/* ---- the claim ------------------------------------------------------------ */

static iotp_rc get_claim(struct run *r, const char *data_dir, const char *endpoint_url,
                         const char *mqtt_endpoint, const char *ca, struct iotp_err *err)
{
	struct api_client c;
	json_t *ans = NULL, *ep = NULL;
	char path[256], endpoint[300];
	const char *s;
	iotp_rc rc;

	memset(&c, 0, sizeof(c));
	if ((rc = client_open(&c, data_dir, endpoint_url, err)) != IOTP_OK)
		return rc;
	snprintf(path, sizeof(path), "/provisioning-templates/%s/provisioning-claim",
	         r->template_name);
	rc = client_call(&c, "POST", path, NULL, 0, "CreateProvisioningClaim", NULL, &ans, err);
	if (rc != IOTP_OK)
		goto out;
	if (!json_is_string(json_object_get(ans, "certificatePem")) ||
	    !json_is_string(json_object_get(json_object_get(ans, "keyPair"), "PrivateKey"))) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "CreateProvisioningClaim answered without "
		                  "a certificate and key");
		goto out;
	}
	r->claim.cert_pem = strdup(json_string_value(json_object_get(ans, "certificatePem")));
	r->claim.key_pem = strdup(
		json_string_value(json_object_get(json_object_get(ans, "keyPair"), "PrivateKey")));
	util_strlcpy(r->claim.template_name, r->template_name, sizeof(r->claim.template_name));
	if (r->params)
		r->claim.parameters = json_incref(r->params);
	/* Where the device provisions: the broker, and the roots it chains to. */
	if (mqtt_endpoint) {
		util_strlcpy(endpoint, mqtt_endpoint, sizeof(endpoint));
	} else {
		const struct client_param q = {"endpointType", "iot:Data-ATS"};

		/* An installer key may only ask for claims: then the device
		 * uses the broker it was configured with. */
		rc = client_call(&c, "GET", "/endpoint", &q, 1, "DescribeEndpoint", NULL, &ep, err);
		if (rc == IOTP_ERR_DENIED || rc == IOTP_ERR_AUTH) {
			endpoint[0] = '\0';
		} else if (rc != IOTP_OK) {
			goto out;
		} else if (!(s = json_string_value(json_object_get(ep, "endpointAddress")))) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "DescribeEndpoint without an address");
			goto out;
		} else {
			snprintf(endpoint, sizeof(endpoint), "%s%s", s, strchr(s, ':') ? "" : ":8883");
		}
		rc = IOTP_OK;
	}
	if (endpoint[0] && !(r->claim.endpoint = strdup(endpoint))) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "claim");
		goto out;
	}
	if (ca || c.ca_file[0]) {
		char *pem = NULL;
		size_t len = 0;

		if ((rc = util_read_file(ca ? ca : c.ca_file, 256 * 1024, &pem, &len, err)) != IOTP_OK)
			goto out;
		r->claim.ca_pem = pem;
	}
	if (!r->claim.cert_pem || !r->claim.key_pem) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "claim");
		goto out;
	}
	r->have_claim = 1;
	{
		json_t *id = json_object_get(ans, "certificateId"), *exp = json_object_get(ans, "expiration");
		char when[32] = "?";

		if (json_is_number(exp)) {
			cli_time_format(json_number_value(exp), when, sizeof(when));
			r->claim_expiration = (int64_t)json_number_value(exp);
		}
		step(r, "claim for template %s: certificate %.12s..., valid until %s, broker %s",
		     r->template_name, json_is_string(id) ? json_string_value(id) : "?", when,
		     endpoint[0] ? endpoint : "(the device's own)");
	}
out:
	json_decref(ans);
	json_decref(ep);
	client_close(&c);
	return rc;
}

/* --claim-file: a bundle saved earlier with --save-claim (an installer may
 * fetch it where there is connectivity and commission where there is none). */
static iotp_rc load_claim(struct run *r, const char *path, struct iotp_err *err)
{
	json_t *o = NULL, *params;
	json_error_t jerr;
	const char *t, *cert, *key, *ca, *ep;
	iotp_rc rc = IOTP_OK;

	o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s: %s", path, jerr.text);
	t = json_string_value(json_object_get(o, "template"));
	cert = json_string_value(json_object_get(o, "claim_cert"));
	key = json_string_value(json_object_get(o, "claim_key"));
	ca = json_string_value(json_object_get(o, "ca"));
	ep = json_string_value(json_object_get(o, "endpoint"));
	params = json_object_get(o, "parameters");
	if (!t || !cert || !key || strlen(t) >= sizeof(r->claim.template_name)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "%s is not a claim file (template, "
		                  "claim_cert, claim_key)", path);
		goto out;
	}
	if (r->template_name && strcmp(r->template_name, t) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "%s is a claim for template %s, not %s", path,
		                  t, r->template_name);
		goto out;
	}
	util_strlcpy(r->claim.template_name, t, sizeof(r->claim.template_name));
	r->claim.cert_pem = strdup(cert);
	r->claim.key_pem = strdup(key);
	r->claim.ca_pem = ca ? strdup(ca) : NULL;
	r->claim.endpoint = ep ? strdup(ep) : NULL;
	if (json_is_object(params) && !r->params)
		r->claim.parameters = json_incref(params);
	else if (r->params)
		r->claim.parameters = json_incref(r->params);
	if (!r->claim.cert_pem || !r->claim.key_pem) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "claim");
		goto out;
	}
	r->have_claim = 1;
	step(r, "claim for template %s from %s", t, path);
out:
	json_decref(o);
	return rc;
}

/* ---- passphrases ---------------------------------------------------------- */

static int read_psks(struct run *r, const char *path)
{
	char *text = NULL, *p, *line;
	size_t len = 0;
	struct iotp_err err;

	if (util_read_file(path, 16384, &text, &len, &err) != IOTP_OK)
		return cli_fail(CMD, "%s", err.msg);
	for (p = text; *p && r->npsk < PSK_TRIES_MAX; p = line) {
		char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		line = nl ? nl + 1 : p + n;
		if (n && p[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;
		if (n > COMMISSION_PSK_MAX) {
			OPENSSL_cleanse(text, len);
			free(text);
			return cli_fail(CMD, "%s: a passphrase is at most 63 characters", path);
		}
		memcpy(r->psks[r->npsk], p, n);
		r->psks[r->npsk][n] = '\0';
		r->npsk++;
	}
	OPENSSL_cleanse(text, len);
	free(text);
	if (r->npsk == 0)
		return cli_fail(CMD, "%s holds no passphrase", path);
	return CLI_OK;
}

/* Asks on the terminal without echo; 0 with a non-empty answer. */
static int prompt_psk(const char *ssid, char *out, size_t size)
{
	struct termios old, quiet;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), ok = -1;
	FILE *f;

	if (fd < 0)
		return -1;
	if (!(f = fdopen(fd, "r+"))) {
		close(fd);
		return -1;
	}
	fprintf(f, "passphrase for %s (empty to give up): ", ssid);
	fflush(f);
	if (tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= (tcflag_t)~ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	if (fgets(out, (int)size, f)) {
		out[strcspn(out, "\r\n")] = '\0';
		ok = out[0] ? 0 : -1;
	}
	tcsetattr(fd, TCSAFLUSH, &old);
	fprintf(f, "\n");
	fclose(f);
	return ok;
}

/* The next passphrase to try into r->net.psk; 0 when there is one. */
static int next_psk(struct run *r)
{
	if (r->psk_next < r->npsk) {
		util_strlcpy(r->net.psk, r->psks[r->psk_next++], sizeof(r->net.psk));
		return 0;
	}
	if (r->prompt && r->psk_next > 0)
		return prompt_psk(r->net.ssid, r->net.psk, sizeof(r->net.psk));
	return -1;
}

/* ---- the interactive session ---------------------------------------------- */

static iotp_rc handshake(struct link *l, struct commission_installer *in, struct run *r,
                         struct iotp_err *err)
{
	struct buf out, reply;
	iotp_rc rc;

	buf_init(&out, 0);
	buf_init(&reply, COMMISSION_LINE_MAX);
	rc = commission_installer_start(in, &out, err);
	while (rc == IOTP_OK && !commission_installer_ready(in)) {
		reply.len = 0;
		if ((rc = link_xfer(l, out.data, &reply, err)) != IOTP_OK)
			break;
		out.len = 0;
		rc = commission_installer_handle(in, reply.data, reply.len, &out, err);
		if (rc == IOTP_OK && !r->device[0] && commission_installer_device(in)[0]) {
			util_strlcpy(r->device, commission_installer_device(in), sizeof(r->device));
			step(r, "device %s answered on %s", r->device, l->target);
		}
	}
	buf_cleanup(&out);
	buf_cleanup(&reply);
	return rc;
}

/* One sealed request and its answer. */
static iotp_rc request(struct link *l, struct commission_installer *in,
                       const struct commission_inner *msg, struct commission_inner *resp,
                       struct iotp_err *err)
{
	struct buf out, reply;
	iotp_rc rc;

	buf_init(&out, 0);
	buf_init(&reply, COMMISSION_LINE_MAX);
	rc = commission_installer_seal(in, msg, &out, err);
	if (rc == IOTP_OK)
		rc = link_xfer(l, out.data, &reply, err);
	if (rc == IOTP_OK)
		rc = commission_installer_open(in, reply.data, reply.len, resp, err);
	buf_cleanup_secure(&out);
	buf_cleanup(&reply);
	return rc;
}

static const char *net_name(const struct commission_network *n)
{
	return n->wired ? "(wired)" : n->ssid;
}

static int session(struct link *l, struct run *r, const char *code)
{
	struct commission_installer *in = NULL;
	struct commission_inner msg, resp;
	struct iotp_err err;
	iotp_rc rc;
	int status = CLI_FAIL;

	memset(&resp, 0, sizeof(resp));
	if ((rc = commission_installer_new(code, &in, &err)) != IOTP_OK)
		return cli_fail(CMD, "%s", err.msg);
	rc = handshake(l, in, r, &err);
	if (rc != IOTP_OK) {
		snprintf(r->reason, sizeof(r->reason), "%s", err.msg);
		if (rc == IOTP_ERR_THROTTLED || rc == IOTP_ERR_LIMIT)
			snprintf(r->reason, sizeof(r->reason), "%s (try again in %lld s)", err.msg,
			         (long long)((commission_installer_retry_ms(in) + 999) / 1000));
		goto out;
	}
	step(r, "setup code accepted: session encrypted (SPAKE2+ P-256, AES-128-GCM)");
	for (;;) {
		memset(&msg, 0, sizeof(msg));
		msg.type = CMI_NETWORK;
		msg.net = r->net;
		rc = request(l, in, &msg, &resp, &err);
		OPENSSL_cleanse(&msg.net, sizeof(msg.net));
		if (rc != IOTP_OK) {
			snprintf(r->reason, sizeof(r->reason), "%s", err.msg);
			goto out;
		}
		r->joined = resp.ok;
		if (resp.ok) {
			step(r, "network %s: joined%s%s", net_name(&r->net), resp.reason[0] ? " - " : "",
			     resp.reason);
			break;
		}
		step(r, "network %s: not joined: %s", net_name(&r->net),
		     resp.reason[0] ? resp.reason : "no reason given");
		snprintf(r->reason, sizeof(r->reason), "network %s not joined: %s", net_name(&r->net),
		         resp.reason);
		commission_inner_cleanup(&resp);
		if (r->net.wired || next_psk(r) != 0)
			goto end;
		step(r, "trying again with another passphrase, in the same session");
	}
	commission_inner_cleanup(&resp);
	if (r->have_claim) {
		memset(&msg, 0, sizeof(msg));
		msg.type = CMI_PROVISION;
		msg.claim = r->claim;
		step(r, "provisioning with the claim (template %s)...", r->claim.template_name);
		rc = request(l, in, &msg, &resp, &err);
		if (rc != IOTP_OK) {
			snprintf(r->reason, sizeof(r->reason), "%s", err.msg);
			goto out;
		}
		if (resp.ok) {
			r->provisioned = 1;
			util_strlcpy(r->thing, resp.thing, sizeof(r->thing));
			util_strlcpy(r->cert_id, resp.cert_id, sizeof(r->cert_id));
			step(r, "provisioned: thing %s, certificate %.12s...", resp.thing, resp.cert_id);
		} else {
			snprintf(r->reason, sizeof(r->reason), "not provisioned: %s", resp.reason);
			step(r, "not provisioned: %s", resp.reason);
		}
		commission_inner_cleanup(&resp);
	}
end:
	memset(&msg, 0, sizeof(msg));
	msg.type = CMI_DONE;
	if (request(l, in, &msg, &resp, &err) == IOTP_OK && resp.type == CMI_BYE)
		step(r, "session closed");
	commission_inner_cleanup(&resp);
	status = r->joined && (!r->have_claim || r->provisioned) ? CLI_OK : CLI_FAIL;
	if (status == CLI_OK)
		r->reason[0] = '\0';
out:
	commission_installer_free(in);
	return status;
}

/* ---- removable media ------------------------------------------------------ */

/* Waits until path exists and gone no longer does (the device renamed the
 * file it answered); *text is malloc'ed. */
static int media_wait(const char *path, const char *gone, int64_t deadline, char **text,
                      size_t *len)
{
	struct iotp_err err;

	for (;;) {
		free(*text);
		*text = NULL;
		if (util_read_file(path, COMMISSION_FILE_MAX, text, len, &err) == IOTP_OK &&
		    access(gone, F_OK) != 0)
			return 0;
		if (util_mono_ms() > deadline)
			return -1;
		usleep(200 * 1000);
	}
}

/* One session over the medium, two rounds: commission-1.json (our share
 * only) -> device-reply.json (the device's share and confirmation), then,
 * only once that confirmation checks, commission.json (ours and the sealed
 * requests) -> commission-result.json. */
static int media_round(struct link *l, struct run *r, const char *code, const char *last_hello,
                       char **hello_used)
{
	char hp[1100], p1[1100], rp1[1100], fp[1100], rp[1100];
	char *hello = NULL, *res = NULL, *seen = NULL;
	size_t hlen = 0, rlen = 0;
	struct commission_installer *in = NULL;
	struct commission_inner msgs[2], outs[COMMISSION_FILE_MSGS_MAX];
	struct buf file;
	struct iotp_err err;
	size_t n = 0, nm = 0;
	int64_t deadline; /* --timeout counts for each answer awaited */
	int status = CLI_FAIL, tries = 0;
	iotp_rc rc;

	snprintf(hp, sizeof(hp), "%s/device-hello.json", l->target);
	snprintf(p1, sizeof(p1), "%s/commission-1.json", l->target);
	snprintf(rp1, sizeof(rp1), "%s/device-reply.json", l->target);
	snprintf(fp, sizeof(fp), "%s/commission.json", l->target);
	snprintf(rp, sizeof(rp), "%s/commission-result.json", l->target);
	buf_init(&file, COMMISSION_FILE_MAX);
again:
	/* The device-hello this session answers: a new one after an earlier
	 * round, or after the device called our first file stale. */
	deadline = util_mono_ms() + l->timeout_ms;
	for (;;) {
		free(hello);
		hello = NULL;
		if (util_read_file(hp, COMMISSION_LINE_MAX, &hello, &hlen, &err) == IOTP_OK &&
		    (!last_hello || strcmp(hello, last_hello) != 0) && (!seen || strcmp(hello, seen) != 0))
			break;
		if (util_mono_ms() > deadline) {
			snprintf(r->reason, sizeof(r->reason), "no %s from the device: %s", hp,
			         last_hello || seen ? "it did not publish a new one"
			                            : "is the medium its own?");
			goto out;
		}
		usleep(200 * 1000);
	}
	commission_installer_free(in);
	in = NULL;
	file.len = 0;
	if (commission_installer_new(code, &in, &err) != IOTP_OK) {
		snprintf(r->reason, sizeof(r->reason), "%s", err.msg);
		goto out;
	}
	rc = commission_installer_file_start(in, hello, hlen, &file, &err);
	if (rc == IOTP_OK) {
		buf_puts(&file, "\n");
		unlink(rp1);
		rc = util_write_file(p1, file.data, file.len, 0600, &err);
	}
	if (rc != IOTP_OK) {
		snprintf(r->reason, sizeof(r->reason), "%s", err.msg);
		goto out;
	}
	if (!r->device[0]) {
		util_strlcpy(r->device, commission_installer_device(in), sizeof(r->device));
		step(r, "device %s found on %s", r->device, l->target);
	}
	step(r, "wrote %s (our SPAKE2+ share only): waiting for the device's reply", p1);
	deadline = util_mono_ms() + l->timeout_ms;
	if (media_wait(rp1, p1, deadline, &res, &rlen) != 0) {
		snprintf(r->reason, sizeof(r->reason),
		         "the device did not answer %s: move the medium to it and run again with "
		         "the same options", p1);
		goto out;
	}
	memset(msgs, 0, sizeof(msgs));
	nm = 0;
	msgs[nm].type = CMI_NETWORK;
	msgs[nm++].net = r->net;
	if (r->have_claim) {
		msgs[nm].type = CMI_PROVISION;
		msgs[nm++].claim = r->claim;
	}
	file.len = 0;
	rc = commission_installer_file_build(in, res, rlen, msgs, nm, &file, &err);
	OPENSSL_cleanse(&msgs[0].net, sizeof(msgs[0].net));
	if (rc == IOTP_ERR_STATE && tries++ == 0) {
		/* Stale (the device was waiting for another session's file):
		 * it has drawn a new device-hello; answer that one. */
		step(r, "the device wants a new file (%s): writing one for its new device-hello",
		     err.msg);
		free(seen);
		seen = hello;
		hello = NULL;
		goto again;
	}
	if (rc == IOTP_OK) {
		buf_puts(&file, "\n");
		unlink(rp);
		rc = util_write_file(fp, file.data, file.len, 0600, &err);
	}
	if (rc != IOTP_OK) {
		snprintf(r->reason, sizeof(r->reason), "%s", err.msg);
		goto out;
	}
	step(r, "the device proved it knows the setup code");
	step(r, "wrote %s (network %s%s): waiting for the device to apply it", fp, net_name(&r->net),
	     r->have_claim ? " and the claim" : "");
	deadline = util_mono_ms() + l->timeout_ms;
	if (media_wait(rp, fp, deadline, &res, &rlen) != 0) {
		snprintf(r->reason, sizeof(r->reason),
		         "the device did not answer: move the medium to it and run again with "
		         "the same options");
		goto out;
	}
	rc = commission_installer_file_result(in, res, rlen, outs, COMMISSION_FILE_MSGS_MAX, &n,
	                                      &err);
	if (rc != IOTP_OK) {
		snprintf(r->reason, sizeof(r->reason), "%s", err.msg);
		goto out;
	}
	step(r, "setup code accepted: answers authenticated (SPAKE2+ P-256, AES-128-GCM)");
	for (size_t i = 0; i < n; i++) {
		if (outs[i].type == CMI_NETWORK_RESULT) {
			r->joined = outs[i].ok;
			step(r, "network %s: %s%s%s", net_name(&r->net),
			     outs[i].ok ? "joined" : "not joined", outs[i].reason[0] ? ": " : "",
			     outs[i].reason);
			if (!outs[i].ok)
				snprintf(r->reason, sizeof(r->reason), "network %s not joined: %s",
				         net_name(&r->net), outs[i].reason);
		} else if (outs[i].type == CMI_PROVISION_RESULT && r->joined) {
			r->provisioned = outs[i].ok;
			util_strlcpy(r->thing, outs[i].thing, sizeof(r->thing));
			util_strlcpy(r->cert_id, outs[i].cert_id, sizeof(r->cert_id));
			if (outs[i].ok)
				step(r, "provisioned: thing %s, certificate %.12s...", outs[i].thing,
				     outs[i].cert_id);
			else {
				step(r, "not provisioned: %s", outs[i].reason);
				snprintf(r->reason, sizeof(r->reason), "not provisioned: %s",
				         outs[i].reason);
			}
		} else if (outs[i].type == CMI_ERROR) {
			snprintf(r->reason, sizeof(r->reason), "device: %s", outs[i].reason);
		}
		commission_inner_cleanup(&outs[i]);
	}
	status = r->joined && (!r->have_claim || r->provisioned) ? CLI_OK : CLI_FAIL;
	if (status == CLI_OK)
		r->reason[0] = '\0';
out:
	if (hello_used) {
		*hello_used = hello;
		hello = NULL;
	}
	commission_installer_free(in);
	buf_cleanup_secure(&file);
	free(hello);
	free(seen);
	free(res);
	return status;
}

static int media_session(struct link *l, struct run *r, const char *code)
{
	char *last = NULL;
	int status;

	for (;;) {
		char *used = NULL;

		status = media_round(l, r, code, last, &used);
		free(last);
		last = used;
		if (status == CLI_OK || r->joined || r->net.wired || !last || r->device[0] == '\0')
			break;
		if (!strstr(r->reason, "not joined") || next_psk(r) != 0)
			break;
		step(r, "trying again with another passphrase (a new file for the device)");
	}
	free(last);
	return status;
}

/* ---- the command ---------------------------------------------------------- */

static int print_json(const struct run *r, int status)
{
	json_t *o = json_pack("{s:s, s:b, s:b, s:s?, s:s?, s:s?}", "device", r->device, "joined",
	                      r->joined, "provisioned", r->provisioned, "thingName",
	                      r->thing[0] ? r->thing : NULL, "certificateId",
	                      r->cert_id[0] ? r->cert_id : NULL, "reason",
	                      r->reason[0] ? r->reason : NULL);
	char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
	return status;
}

/* Parses NAME=VALUE arguments into a new object (NULL with none). */
static int parse_params(const struct cli_spec *spec, int nargs, const char **args, json_t **out)
{
	*out = NULL;
	if (nargs == 0)
		return CLI_OK;
	*out = json_object();
	for (int i = 0; i < nargs; i++) {
		const char *eq = strchr(args[i], '=');
		char name[129];

		if (!eq || eq == args[i] || (size_t)(eq - args[i]) >= sizeof(name)) {
			json_decref(*out);
			*out = NULL;
			return cli_usage_error(spec, "%s: parameters are NAME=VALUE", args[i]);
		}
		memcpy(name, args[i], (size_t)(eq - args[i]));
		name[eq - args[i]] = '\0';
		json_object_set_new(*out, name, json_string(eq + 1));
	}
	return CLI_OK;
}

/* --save-claim: the claim bundle the web page takes (the wire names of
 * the provision message, plus its expiry). */
static int save_claim_file(const struct cli_spec *spec, const char *path, const char *tmpl,
                           const char *data_dir, const char *endpoint_url,
                           const char *mqtt_endpoint, const char *ca, int nargs,
                           const char **args, int json)
{
	struct run r;
	struct iotp_err err;
	json_t *o = NULL;
	char *text = NULL;
	int status = CLI_FAIL;

	memset(&r, 0, sizeof(r));
	r.json = json;
	r.template_name = tmpl;
	if ((status = parse_params(spec, nargs, args, &r.params)) != CLI_OK)
		return status;
	status = CLI_FAIL;
	if (get_claim(&r, data_dir, endpoint_url, mqtt_endpoint, ca, &err) != IOTP_OK) {
		cli_fail(CMD, "no claim from iotprovd: %s", err.msg);
		goto out;
	}
	o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:O?, s:I}", "template", tmpl, "claim_cert",
	              r.claim.cert_pem, "claim_key", r.claim.key_pem, "ca", r.claim.ca_pem,
	              "endpoint", r.claim.endpoint, "parameters", r.params, "expiration",
	              (json_int_t)r.claim_expiration);
	text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	if (!text) {
		cli_fail(CMD, "out of memory");
		goto out;
	}
	if (util_write_file(path, text, strlen(text), 0600, &err) != IOTP_OK) {
		cli_fail(CMD, "%s", err.msg);
		goto out;
	}
	if (json)
		printf("{\"claimFile\": \"%s\"}\n", path);
	else
		printf("claim saved to %s: give it to the device's web page within 5 minutes\n",
		       path);
	status = CLI_OK;
out:
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	json_decref(o);
	commission_inner_cleanup(&(struct commission_inner){.claim = r.claim});
	json_decref(r.params);
	return status;
}

int cmd_commission(int argc, char **argv)
{
	const char *device = NULL, *code_arg = NULL, *code_file = NULL, *ssid = NULL;
	const char *psk_file = NULL, *tmpl = NULL, *data_dir = NULL, *endpoint_url = NULL;
	const char *mqtt_endpoint = NULL, *ca = NULL, *timeout_s = NULL, *save_claim = NULL;
	const char *claim_file = NULL;
	int wired = 0, open_net = 0, no_claim = 0, json = 0;
	const struct cli_opt opts[] = {
		{"device", 0, "URL|TTY|DIR", "the device: its web address, serial port or medium",
		 &device, NULL},
		{"setup-code", 0, "CODE", "the setup code on the device's label", &code_arg, NULL},
		{"setup-code-file", 0, "FILE", "read the setup code from FILE instead", &code_file,
		 NULL},
		{"ssid", 0, "SSID", "the Wi-Fi network the device joins", &ssid, NULL},
		{"psk-file", 0, "FILE", "its passphrase (first line; later lines are tried in turn "
		 "if the device cannot join)", &psk_file, NULL},
		{"open", 0, NULL, "the network has no passphrase", NULL, &open_net},
		{"wired", 0, NULL, "the device is on a cable: no Wi-Fi settings", NULL, &wired},
		{"template", 0, "T", "provisioning template of the trusted-user claim", &tmpl, NULL},
		{"no-claim", 0, NULL, "network only: do not provision the device", NULL, &no_claim},
		{"claim-file", 0, "FILE", "use a claim saved with --save-claim instead of asking "
		 "iotprovd now", &claim_file, NULL},
		{"data-dir", 0, "DIR", "iotprov data directory (for the API)", &data_dir, NULL},
		{"endpoint-url", 0, "URL", "iotprovd API with AWS_* credentials of an installer key",
		 &endpoint_url, NULL},
		{"mqtt-endpoint", 0, "HOST:PORT", "broker the device provisions with (default: "
		 "DescribeEndpoint)", &mqtt_endpoint, NULL},
		{"ca", 0, "FILE", "roots the device trusts for the broker (default: the API's)", &ca,
		 NULL},
		{"save-claim", 0, "FILE", "only get the claim, into FILE (0600), for the device's web "
		 "page; no --device", &save_claim, NULL},
		{"timeout", 0, "S", "seconds to wait for each answer (default 120)", &timeout_s, NULL},
		{"json", 0, NULL, "print the outcome as JSON", NULL, &json},
	};
	const struct cli_spec spec = {
		"commission",
		"--device URL|TTY|DIR --setup-code CODE (--ssid S [--psk-file F|--open] | --wired) "
		"(--template T | --claim-file F | --no-claim) [--data-dir DIR | --endpoint-url URL] "
		"[NAME=VALUE...]",
		"Gets a factory-fresh device onto the network and into the fleet in one\n"
		"secure session. With an installer access key it asks iotprovd for a\n"
		"trusted-user claim for template T (5-minute life), proves the setup code to\n"
		"the device with SPAKE2+ (the code never travels), sends the network over\n"
		"the encrypted session, corrects the passphrase in the same session when the\n"
		"device cannot join, then hands it the claim and the NAME=VALUE template\n"
		"parameters and prints the thing it became, or why it did not.\n"
		"--device: http://HOST:PORT (the device's page), a serial port, or the\n"
		"directory where its removable medium is mounted.\n"
		"--save-claim FILE --template T: only fetch the claim, for the person who\n"
		"uses the device's web page instead (it asks for that file).",
		opts, sizeof(opts) / sizeof(opts[0]), 0, CLI_MAX_ARGS};
	const char *args[CLI_MAX_ARGS];
	char code[COMMISSION_SETUP_CODE_MAX + 2] = "";
	struct run r;
	struct link l;
	struct iotp_err err;
	int64_t tmo = 120;
	int nargs, rc, status = CLI_FAIL;

	rc = cli_parse(&spec, argc, argv, args, &nargs);
	if (rc != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	memset(&r, 0, sizeof(r));
	memset(&l, 0, sizeof(l));
	l.fd = -1;
	r.json = json;
	step_no = 0;
	if (save_claim) {
		if (!tmpl || device)
			return cli_usage_error(&spec, "--save-claim needs --template and no --device");
		return save_claim_file(&spec, save_claim, tmpl, data_dir, endpoint_url, mqtt_endpoint,
		                       ca, nargs, args, json);
	}
	if (!device)
		return cli_usage_error(&spec, "--device is required");
	if (!code_arg == !code_file)
		return cli_usage_error(&spec, "give the setup code with --setup-code or "
		                              "--setup-code-file");
	if (wired + open_net + (psk_file != NULL) > 1 || (!wired && !ssid) || (wired && ssid))
		return cli_usage_error(&spec, "give --ssid with --psk-file or --open, or --wired");
	if ((tmpl || claim_file) == no_claim)
		return cli_usage_error(&spec, "give --template T (or --claim-file F), or --no-claim "
		                              "for network only");
	if (timeout_s && util_parse_int64(timeout_s, 1, 3600, &tmo) != IOTP_OK)
		return cli_usage_error(&spec, "--timeout: seconds from 1 to 3600");
	r.template_name = tmpl;
	if ((rc = parse_params(&spec, nargs, args, &r.params)) != CLI_OK)
		return rc;
	if (code_file) {
		char *text = NULL;
		size_t len = 0;

		if (util_read_file(code_file, 1024, &text, &len, &err) != IOTP_OK) {
			status = cli_fail(CMD, "%s", err.msg);
			goto out;
		}
		text[strcspn(text, "\r\n")] = '\0';
		util_strlcpy(code, text, sizeof(code));
		OPENSSL_cleanse(text, len);
		free(text);
	} else {
		util_strlcpy(code, code_arg, sizeof(code));
	}
	r.net.wired = wired;
	if (ssid)
		util_strlcpy(r.net.ssid, ssid, sizeof(r.net.ssid));
	if (psk_file && (status = read_psks(&r, psk_file)) != CLI_OK)
		goto out;
	status = CLI_FAIL;
	r.prompt = isatty(0) && !json;
	if (!wired && !open_net) {
		if (r.npsk == 0) {
			if (!r.prompt) {
				status = cli_usage_error(&spec, "--psk-file is needed (or --open)");
				goto out;
			}
			r.psk_next = 1; /* so that next_psk prompts */
		}
		if (next_psk(&r) != 0) {
			status = cli_usage_error(&spec, "no passphrase given");
			goto out;
		}
	}
	if (commission_network_validate(&r.net, &err) != IOTP_OK) {
		status = cli_usage_error(&spec, "%s", err.msg);
		goto out;
	}
	if (claim_file && load_claim(&r, claim_file, &err) != IOTP_OK) {
		snprintf(r.reason, sizeof(r.reason), "%s", err.msg);
		goto report;
	}
	if (!claim_file && tmpl &&
	    get_claim(&r, data_dir, endpoint_url, mqtt_endpoint, ca, &err) != IOTP_OK) {
		snprintf(r.reason, sizeof(r.reason), "no claim from iotprovd: %s", err.msg);
		goto report;
	}
	if (link_open(&l, device, (int)tmo, &err) != IOTP_OK) {
		snprintf(r.reason, sizeof(r.reason), "%s", err.msg);
		goto report;
	}
	status = l.kind == LINK_MEDIA ? media_session(&l, &r, code) : session(&l, &r, code);
report:
	if (json) {
		print_json(&r, status);
	} else if (status == CLI_OK) {
		if (r.provisioned)
			printf("done: device %s is on %s as thing %s\n", r.device, net_name(&r.net),
			       r.thing);
		else
			printf("done: device %s is on %s\n", r.device, net_name(&r.net));
	}
	if (status != CLI_OK)
		cli_fail(CMD, "%s", r.reason[0] ? r.reason : "commissioning failed");
out:
	link_close(&l);
	OPENSSL_cleanse(code, sizeof(code));
	OPENSSL_cleanse(r.psks, sizeof(r.psks));
	OPENSSL_cleanse(&r.net, sizeof(r.net));
	commission_inner_cleanup(&(struct commission_inner){.claim = r.claim});
	json_decref(r.params);
	return status;
}
