/*
 * The ordered schema migrations (see schema.c).
 */
#ifndef IOTP_STORE_SCHEMA_H
#define IOTP_STORE_SCHEMA_H

extern const char *const store_migrations[];
extern const int store_migration_count;

#endif
