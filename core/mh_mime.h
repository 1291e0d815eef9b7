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

/* The most text mh_mime_parse_body() returns (the rest of a longer body is not indexed). */
#define MH_MIME_BODY_TEXT_MAX ((size_t)1 << 20)

struct mh_mime_body {
    char *text;              /* the readable text, UTF-8, parts separated by "\n"; NULL if none */
    size_t text_len;         /* strlen(text), at most MH_MIME_BODY_TEXT_MAX */
    char *attachments;       /* JSON array text of {"name","type","size"}; NULL if none */
    char *attachment_names;  /* the attachments' names, "\n"-separated (for the search index); NULL if none */
};

/**
 * Parse the whole message (GMime's MIME parser) into b (zeroed first): the
 * decoded text of its text/plain parts and of its text/html parts (tags,
 * comments, scripts and styles dropped, entities decoded; a
 * multipart/alternative gives its text/plain part only, when it has one),
 * of any charset GMime's iconv knows (a part without a charset, or with an
 * unknown one, is read as UTF-8, else GB18030, else Big5, else ISO-8859-1),
 * transfer encodings undone; the subject and senders of attached messages
 * (message/rfc822), whose parts are read too.  Every other part, and a text
 * part that is an attachment (Content-Disposition: attachment, or a file
 * name), is listed in attachments: name (null if none), type ("image/png"),
 * size (decoded bytes); signatures (application/pgp-signature, pkcs7) are
 * not listed.  Text is valid UTF-8 without control characters other than
 * "\n" and "\t", cut at MH_MIME_BODY_TEXT_MAX bytes on a character boundary.
 * Malformed MIME never fails: whatever could be read is returned.
 * Thread-safe.  Returns 0, or -1 on allocation failure (b is then empty).
 */
int mh_mime_parse_body(const void *raw, size_t len, struct mh_mime_body *b);
void mh_mime_body_clear(struct mh_mime_body *b);

#endif
