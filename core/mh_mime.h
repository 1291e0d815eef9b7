/*
 * Parsing a message once on arrival (GMime): the headers a mail client lists,
 * decoded to UTF-8 from any charset (RFC 2047 words in GBK, GB2312, GB18030,
 * Big5, ISO-2022-JP, ...; also raw 8-bit headers in a legacy charset).
 * Malformed input never fails: whatever could be parsed is returned.
 */
#ifndef MH_MIME_H
#define MH_MIME_H

#include <stddef.h>
#include <stdint.h>

struct mh_mime_headers {
    char *from;        /* "Alice Chen <alice@example.com>", decoded; NULL if absent or empty */
    char *to;          /* decoded address list, "a <x@y>, b <z@w>" */
    char *cc;
    char *subject;     /* decoded, folded whitespace collapsed */
    char *message_id;  /* without the angle brackets */
    int64_t date;      /* the Date: header as seconds since the epoch; 0 if absent/unparsable */
};

/** Call once per process (thread-safe, idempotent) before mh_mime_parse(). */
void mh_mime_init(void);
/**
 * Parse the header block of raw (an RFC 5322 message) into h (zeroed first).
 * Only the bytes up to the first empty line are read (at most 4 MiB).
 * Every string is valid UTF-8 (invalid bytes become U+FFFD) without control
 * characters, whitespace runs collapsed to one space, no leading or trailing
 * space, at most 998 bytes (longer values are cut on a character boundary).
 * Raw 8-bit header text is read as UTF-8, else GB18030, else Big5, else
 * ISO-8859-1 (word by word, whichever converts without errors first).
 * Malloc'ed strings (free with mh_mime_headers_clear()).  Thread-safe.
 * Returns 0, or -1 only on allocation failure (h is then empty).
 */
int mh_mime_parse(const void *raw, size_t len, struct mh_mime_headers *h);
void mh_mime_headers_clear(struct mh_mime_headers *h);

#endif
