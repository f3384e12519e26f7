/*
 * unit.hotpath reuses the provisioning-engine fixtures (a core over a fresh
 * SQLite store with an issuing CA, table dumps, certificate makers).
 */
#include "../provision/helpers.c"
