/*
 * Recording iotprov's own CAs in the registry (see setup.h). Written in the
 * store's portable SQL so that a PostgreSQL data directory is set up the
 * same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/pki.h"
#include "core/setup.h"

iotp_rc setup_own_ca_record(struct iotp_core *core, const char *actor, X509 *ca,
                            const char *origin, struct iotp_err *err)
{
	char id[PKI_CERT_ID_LEN + 1], object[PKI_CERT_ID_LEN + 8], detail[160];
	char *pem = NULL, *subject = NULL;
	int64_t nb = 0, na = 0, now = util_now();
	int in_tx = 0;
	iotp_rc rc;

	if (strcmp(origin, "ROOT") != 0 && strcmp(origin, "ISSUING") != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "origin of an own CA must be ROOT or ISSUING, not '%s'", origin);
	if (!pki_cert_is_ca(ca))
		return iotp_err_set(err, IOTP_ERR_CERT, "the %s certificate is not a CA certificate",
		                    origin);
	if ((rc = pki_cert_id(ca, id, err)) != IOTP_OK ||
	    (rc = pki_cert_to_pem(ca, &pem, err)) != IOTP_OK ||
	    (rc = pki_cert_subject_string(ca, 0, &subject, err)) != IOTP_OK ||
	    (rc = pki_cert_validity(ca, &nb, &na, err)) != IOTP_OK)
		goto out;
	snprintf(object, sizeof(object), "cacert/%s", id);
	snprintf(detail, sizeof(detail), "{\"certificateId\":\"%s\",\"origin\":\"%s\"}", id, origin);
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		goto out;
	in_tx = 1;
	{
		struct store_val p[] = {SV_TEXT(id),    SV_TEXT(pem), SV_TEXT(subject),
		                        SV_TEXT(origin), SV_INT(nb),   SV_INT(na),
		                        SV_INT(now),     SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO cas (id, pem, subject, status, auto_registration, mode, "
		                "origin, not_before, not_after, created, updated) "
		                "VALUES (?, ?, ?, 'ACTIVE', 'DISABLE', 'DEFAULT', ?, ?, ?, ?, ?)",
		                p, (int)IOTP_ARRAY_LEN(p), NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "CA certificate %s is recorded already",
			                  id);
		if (rc != IOTP_OK)
			goto out;
	}
	if ((rc = store_event_append(core->store, actor, "cacert.create", object, detail, NULL,
	                             err)) != IOTP_OK)
		goto out;
	rc = store_commit(core->store, err);
	in_tx = 0;
out:
	if (in_tx)
		store_rollback(core->store);
	free(pem);
	free(subject);
	return rc;
}
