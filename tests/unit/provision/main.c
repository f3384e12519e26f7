/*
 * unit.provision: the provisioning engine (core/provision.h) against a real
 * SQLite store: applying templates, template CRUD and versions, fleet
 * provisioning with ownership tokens, claims, the sweep and JITP.
 */
#include "common/log.h"
#include "helpers.h"

int main(void)
{
	int failed = 0;

	iotp_log_set_level(IOTP_LOG_ERROR);
	failed += suite_apply();
	failed += suite_template();
	failed += suite_fleet();
	return failed != 0;
}
