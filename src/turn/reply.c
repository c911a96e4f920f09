/* turn/reply.c: every response leaves through here, so the security attributes are added in
 * one place: SOFTWARE (when configured, and only on answers to authenticated requests: an
 * unauthenticated answer stays small, see docs/security.md) first, then MESSAGE-INTEGRITY (and
 * MESSAGE-INTEGRITY-SHA256 when the request used it) once the request has been
 * authenticated, then FINGERPRINT when the request carried one. */
#include "internal.h"

void turn__reply_begin(turn__req *r, stun_builder *b, uint8_t *buf, size_t cap, uint8_t cls)
{
    stun_builder_begin_response(b, buf, cap, r->m, cls);
    if (r->s->software && r->authed)
        stun_builder_add(b, STUN_ATTR_SOFTWARE, r->s->software, r->s->software_len);
}

int turn__reply_send(turn__req *r, stun_builder *b)
{
    if (r->authed) {
        stun_builder_add_integrity(b, r->key, r->keylen);
        if (r->mi256)
            stun_builder_add_integrity_sha256(b, r->key, r->keylen);
    }
    if (r->m->fp_off)
        stun_builder_add_fingerprint(b);
    int n = stun_builder_finish(b);
    if (n > 0) {
        r->s->ops.send_client(r->s->ops.ctx, r->t, b->buf, (size_t)n);
        turn__count_reply(r);
    }
    return n;
}

void turn__reply_error(turn__req *r, int code, int flags)
{
    turn__reply_error_reason(r, code, NULL, flags);
}

void turn__reply_error_reason(turn__req *r, int code, const char *reason, int flags)
{
    uint8_t buf[TURN__REPLY_CAP];
    stun_builder b;
    r->code = code;
    turn__reply_begin(r, &b, buf, sizeof buf, STUN_CLASS_ERROR);
    stun_builder_add_error_code(&b, code, reason);
    if (code == 420)
        stun_builder_add_unknown_attributes(&b, r->m->unknown,
                                            r->m->n_unknown < STUN_MAX_UNKNOWN ? r->m->n_unknown
                                                                               : STUN_MAX_UNKNOWN);
    if (flags & TURN__WITH_NONCE) {
        if (r->s->ops.challenge_ok && !r->s->ops.challenge_ok(r->s->ops.ctx, r->t)) {
            r->s->stats.challenges_suppressed++;
            return;
        }
        char nonce[TURN__NONCE_LEN];
        turn__nonce_make(r->s, r->t, r->now_ms, nonce);
        stun_builder_add(&b, STUN_ATTR_REALM, r->s->realm, r->s->realm_len);
        stun_builder_add(&b, STUN_ATTR_NONCE, nonce, sizeof nonce);
    }
    turn__reply_send(r, &b);
}
