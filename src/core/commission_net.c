/*
 * Network apply for commissioning: renders the credentials the installer
 * sent as a wpa_supplicant network block or a NetworkManager keyfile,
 * writes it (mode 0600, atomically) where the device's configuration says,
 * and runs the configured apply command, whose exit status says whether the
 * device joined. The command is the device maker's (wpa_cli reconfigure,
 * nmcli connection load/up, or a test script): it runs with /bin/sh -c,
 * the file's path in IOTP_NET_CONFIG, and at most timeout_s seconds.
 *
 * Escaping: the SSID goes into wpa_supplicant as hex (ssid=6869...), which
 * accepts any byte; a passphrase is printable ASCII by validation, and in a
 * keyfile backslashes and a leading space are escaped as GKeyFile expects.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "core/commission.h"

iotp_rc commission_net_format_parse(const char *s, enum commission_net_format *out,
                                    struct iotp_err *err)
{
	if (strcmp(s, "wpa_supplicant") == 0)
		*out = COMMISSION_NET_WPA_SUPPLICANT;
	else if (strcmp(s, "networkmanager") == 0)
		*out = COMMISSION_NET_NETWORKMANAGER;
	else
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "network format \"%s\": expected wpa_supplicant or networkmanager",
		                    s);
	return IOTP_OK;
}

/* GKeyFile value escaping: \ -> \\, a leading space -> \s. */
static iotp_rc keyfile_value(struct buf *out, const char *v)
{
	iotp_rc rc = IOTP_OK;

	for (size_t i = 0; v[i] && rc == IOTP_OK; i++) {
		if (v[i] == '\\')
			rc = buf_puts(out, "\\\\");
		else if (i == 0 && v[i] == ' ')
			rc = buf_puts(out, "\\s");
		else
			rc = buf_append(out, &v[i], 1);
	}
	return rc;
}

static int is_raw_psk(const char *psk)
{
	return strlen(psk) == 64;
}

static iotp_rc render_wpa(const struct commission_network *net, struct buf *out)
{
	char hex[2 * COMMISSION_SSID_MAX + 1];
	iotp_rc rc;

	util_hex(net->ssid, strlen(net->ssid), hex);
	rc = buf_printf(out, "# written by iotprov-device commission\nnetwork={\n\tssid=%s\n", hex);
	if (rc == IOTP_OK && !net->psk[0])
		rc = buf_puts(out, "\tkey_mgmt=NONE\n");
	else if (rc == IOTP_OK && is_raw_psk(net->psk))
		rc = buf_printf(out, "\tkey_mgmt=WPA-PSK\n\tpsk=%s\n", net->psk);
	else if (rc == IOTP_OK)
		rc = buf_printf(out, "\tkey_mgmt=WPA-PSK\n\tpsk=\"%s\"\n", net->psk);
	if (rc == IOTP_OK)
		rc = buf_puts(out, "}\n");
	return rc;
}

static iotp_rc render_nm(const struct commission_network *net, struct buf *out)
{
	char uuid[37];
	iotp_rc rc;

	if ((rc = util_uuid(uuid, NULL)) != IOTP_OK)
		return rc;
	rc = buf_puts(out, "# written by iotprov-device commission\n[connection]\nid=");
	if (rc == IOTP_OK)
		rc = keyfile_value(out, net->wired ? "iotprov-wired" : net->ssid);
	if (rc == IOTP_OK)
		rc = buf_printf(out, "\nuuid=%s\ntype=%s\nautoconnect=true\n\n", uuid,
		                net->wired ? "ethernet" : "wifi");
	if (rc == IOTP_OK && !net->wired) {
		rc = buf_puts(out, "[wifi]\nmode=infrastructure\nssid=");
		if (rc == IOTP_OK)
			rc = keyfile_value(out, net->ssid);
		if (rc == IOTP_OK)
			rc = buf_puts(out, "\n\n");
		if (rc == IOTP_OK && net->psk[0]) {
			rc = buf_puts(out, "[wifi-security]\nkey-mgmt=wpa-psk\npsk=");
			if (rc == IOTP_OK)
				rc = keyfile_value(out, net->psk);
			if (rc == IOTP_OK)
				rc = buf_puts(out, "\n\n");
		}
	}
	if (rc == IOTP_OK)
		rc = buf_puts(out, "[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n");
	return rc;
}

iotp_rc commission_net_render(enum commission_net_format format,
                              const struct commission_network *net, struct buf *out,
                              struct iotp_err *err)
{
	iotp_rc rc = commission_network_validate(net, err);

	if (rc != IOTP_OK)
		return rc;
	if (format == COMMISSION_NET_WPA_SUPPLICANT && net->wired)
		return IOTP_OK; /* wpa_supplicant has nothing to say about a cable */
	rc = format == COMMISSION_NET_WPA_SUPPLICANT ? render_wpa(net, out) : render_nm(net, out);
	if (rc != IOTP_OK)
		return iotp_err_set(err, rc, "network configuration: %s", iotp_strerror(rc));
	return IOTP_OK;
}

/* First non-empty line of text, printable, into reason. */
static void first_line(const char *text, char *reason, size_t size)
{
	size_t i = 0;

	while (*text == '\n' || *text == '\r' || *text == ' ')
		text++;
	for (; text[i] && text[i] != '\n' && text[i] != '\r' && i + 1 < size; i++)
		reason[i] = ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) ? ' ' : text[i];
	reason[i] = '\0';
}

/* Runs cmd with env additions; collects up to 4 KiB of stdout+stderr; kills
 * it after timeout_s. *status is the wait status, or -1 on timeout. */
static iotp_rc run_cmd(const char *cmd, char *const envs[], int timeout_s, int *status,
                       char *output, size_t output_size, struct iotp_err *err)
{
	int pfd[2] = {-1, -1};
	size_t used = 0;
	int64_t deadline = util_mono_ms() + (int64_t)timeout_s * 1000;
	pid_t pid;
	int st = 0, timed_out = 0, reaped = 0;

	if (pipe(pfd) != 0)
		return iotp_err_set(err, IOTP_ERR_IO, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return iotp_err_set(err, IOTP_ERR_IO, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		for (size_t i = 0; envs[i]; i++)
			putenv(envs[i]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	output[0] = '\0';
	for (;;) {
		struct pollfd p = {pfd[0], POLLIN, 0};
		int64_t left = deadline - util_mono_ms();
		char tmp[512];
		ssize_t n;

		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!p.revents)
			continue;
		n = read(pfd[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (used + 1 < output_size) {
			size_t take = (size_t)n < output_size - 1 - used ? (size_t)n : output_size - 1 - used;

			memcpy(output + used, tmp, take);
			used += take;
			output[used] = '\0';
		}
	}
	close(pfd[0]);
	/* A command may close its output and go on running: the deadline
	 * holds for its exit too. */
	while (!timed_out && !reaped) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			reaped = 1;
		else if (w < 0 && errno != EINTR)
			break;
		else if (util_mono_ms() >= deadline)
			timed_out = 1;
		else
			poll(NULL, 0, 20);
	}
	if (timed_out)
		kill(-pid, SIGKILL);
	while (!reaped && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*status = timed_out ? -1 : st;
	return IOTP_OK;
}

iotp_rc commission_net_apply(const struct commission_net_conf *conf,
                             const struct commission_network *net, int *joined, char *reason,
                             size_t reason_size, struct iotp_err *err)
{
	struct buf text;
	char env_cfg[1100], env_mode[32], env_ssid[64], output[4096];
	char *envs[4];
	int status = 0;
	iotp_rc rc;

	buf_init(&text, 64 * 1024);
	rc = commission_net_render(conf->format, net, &text, err);
	if (rc != IOTP_OK)
		goto out;
	if (conf->config_path && text.len) {
		rc = util_write_file(conf->config_path, text.data, text.len, 0600, err);
		if (rc != IOTP_OK)
			goto out;
	}
	if (!conf->apply_cmd || !conf->apply_cmd[0]) {
		*joined = 1;
		reason[0] = '\0';
		goto out;
	}
	snprintf(env_cfg, sizeof(env_cfg), "IOTP_NET_CONFIG=%s",
	         conf->config_path ? conf->config_path : "");
	snprintf(env_mode, sizeof(env_mode), "IOTP_NET_MODE=%s",
	         net->wired ? "wired" : net->psk[0] ? "wifi" : "open");
	snprintf(env_ssid, sizeof(env_ssid), "IOTP_NET_SSID=%s", net->wired ? "" : net->ssid);
	envs[0] = env_cfg;
	envs[1] = env_mode;
	envs[2] = env_ssid;
	envs[3] = NULL;
	rc = run_cmd(conf->apply_cmd, envs, conf->timeout_s > 0 ? conf->timeout_s : 30, &status,
	             output, sizeof(output), err);
	if (rc != IOTP_OK)
		goto out;
	if (status == -1) {
		*joined = 0;
		snprintf(reason, reason_size, "no connection after %d s",
		         conf->timeout_s > 0 ? conf->timeout_s : 30);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		*joined = 1;
		first_line(output, reason, reason_size);
	} else {
		*joined = 0;
		first_line(output, reason, reason_size);
		if (!reason[0])
			snprintf(reason, reason_size, "apply command failed (status %d)",
			         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
out:
	buf_cleanup_secure(&text);
	return rc;
}
