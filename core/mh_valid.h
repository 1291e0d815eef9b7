/* Validation of user-supplied identifiers: names, phone numbers, e-mail addresses. */
#ifndef MH_VALID_H
#define MH_VALID_H

/** A user or account name: 1..64 bytes of [A-Za-z0-9._@+-], not starting with '.' or '-'.  1 valid, 0 not. */
int mh_valid_name(const char *s);
/** E.164: '+', a non-zero digit, 7..15 digits in all.  1 valid, 0 not. */
int mh_valid_e164(const char *s);
/**
 * Normalise a phone number as typed ("+86 138-0013-8000", "+1 (415) 555 0100")
 * to E.164 in out ('+', at most 15 digits, NUL): spaces, tabs, dashes, dots
 * and one level of balanced parentheses after the '+' are dropped; anything
 * else (letters, "00" instead of '+', a national number) is refused.
 * Returns 0, or -1 (out is then "") if the result is not E.164.
 */
int mh_normalize_e164(const char *in, char out[17]);
/**
 * An addr-spec local@domain (RFC 5321 limits: 64 local, 255 domain, 254 in
 * all).  The local part is a dot-atom (quoted local parts are refused); the
 * domain has at least two labels of letters, digits and inner hyphens, or
 * UTF-8 (RFC 6531); no IP literals.  1 valid, 0 not.
 */
int mh_valid_email(const char *s);

#endif
