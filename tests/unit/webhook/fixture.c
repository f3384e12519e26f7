/*
 * The store/CA fixtures of unit.provision, compiled into unit.webhook as
 * well so that both suites set up a core the same way.
 */
#include "../provision/helpers.c"
