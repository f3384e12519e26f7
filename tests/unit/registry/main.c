/*
 * unit.registry: the registry's business rules against a real SQLite store
 * (things, types, groups, policies, certificates, CAs and their events).
 */
#include "common/log.h"
#include "helpers.h"

int main(void)
{
	int failed = 0;

	iotp_log_set_level(IOTP_LOG_WARN);

	failed += suite_thing();
	failed += suite_group();
	failed += suite_policy();
	failed += suite_cert();
	failed += suite_ca();
	return failed != 0;
}
