/*
 * Full-text search with a blind index: the store never holds a plaintext
 * word of a message.  The core turns a message's text into tokens
 * (mh_search_tokens), and each unique token into an opaque term, a keyed
 * hash under the user's search key (mh_search_blind).  The store keeps the
 * terms and matches AND-queries of them; a query is tokenised and blinded
 * the same way (mh_search_query).  docs/security.md says what the terms
 * still reveal.
 *
 * Tokens: text is lower-cased (ASCII, Latin-1, Latin Extended-A and
 * Additional, Greek, Cyrillic, Armenian; full-width Latin letters and digits
 * become ASCII) and split on anything that is not a letter, a digit or a
 * combining mark.  Runs of CJK characters (Han, Hiragana, Katakana, Hangul)
 * become overlapping bigrams ("季度报告" -> 季度 度报 报告); a CJK character
 * standing alone is a unigram.  An e-mail address is a token as a whole,
 * and its local part and domain too (besides the words in it).  A token of
 * one ASCII letter is dropped; a token is cut at 64 bytes on a character
 * boundary.
 *
 * Every function is thread-safe (no global state) and returns malloc'ed
 * memory (free()), or NULL on allocation failure.
 */
#ifndef MH_SEARCH_H
#define MH_SEARCH_H

#include <stddef.h>

#define MH_SEARCH_TOKEN_MAX 64 /* bytes of one token, at most */
#define MH_SEARCH_TERM_LEN 16  /* characters of one blind term */
#define MH_SEARCH_QUERY_MAX 64 /* terms of one query, at most */

/**
 * The unique tokens of utf8 (len bytes; invalid UTF-8 separates tokens), in
 * order of first appearance, space-separated, at most max_terms of them
 * (0: no limit).  "" when there is none.
 */
char *mh_search_tokens(const char *utf8, size_t len, size_t max_terms);

/** The search key of a user: HMAC-SHA256(data_key, "mailhub search v2"). */
void mh_search_key(const unsigned char data_key[32], unsigned char out[32]);

/**
 * The blind terms of space-separated tokens, space-separated, sorted by
 * their 80-bit value and unique (so they keep nothing of the order of the
 * words): each the first
 * 16 characters of the lower-case RFC 4648 base32 of AES-256(key,
 * block(token)) (80 bits; letters a-z and digits 2-7), where block(token) is
 * the token zero-padded with its length in byte 15 when it has at most 15
 * bytes, else the first 16 bytes of SHA-256("mailhub term" NUL token) with
 * the high bit of byte 15 set.  "" for no token.
 */
char *mh_search_blind(const unsigned char key[32], const char *tokens);

/**
 * The terms a message must all have to match the user's query: the query
 * tokenised as above (an e-mail address only as a whole, CJK words as their
 * bigrams), unique, at most MH_SEARCH_QUERY_MAX, blinded.  NULL when the
 * query has no token (or on allocation failure).
 */
char *mh_search_query(const unsigned char key[32], const char *query);

/** The tokens of a query (as mh_search_query() blinds them); "" when none. */
char *mh_search_query_tokens(const char *query);

#endif
