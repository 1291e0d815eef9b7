/*
 * The blind search index (core/mh_search.c): tokens of English, Chinese,
 * Japanese, Korean, Greek, Cyrillic and mixed text, e-mail addresses,
 * limits; the search key and blind terms (stable, key-dependent, no
 * plaintext, AES-256 as OpenSSL computes it); queries whose terms are a
 * subset of a document's exactly when it should match.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mh_search.h"

/* ------------------------------------------------------------ helpers */

static char *toks(const char *s)
{
    char *t = mh_search_tokens(s, strlen(s), 0);
    assert_non_null(t);
    return t;
}

/* Is word one of the space-separated items of list? */
static int has(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, " ");
        if (k == n && memcmp(p, word, n) == 0)
            return 1;
        p += k;
        while (*p == ' ')
            p++;
    }
    return 0;
}

static size_t count_items(const char *list)
{
    size_t c = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        c++;
        p += strcspn(p, " ");
    }
    return c;
}

/* Is every item of a in b? */
static int subset(const char *a, const char *b)
{
    char *copy = strdup(a);
    assert_non_null(copy);
    int ok = 1;
    for (char *save = NULL, *w = strtok_r(copy, " ", &save); w != NULL && ok; w = strtok_r(NULL, " ", &save))
        ok = has(b, w);
    free(copy);
    return ok;
}

/* Tokens are unique. */
static void assert_unique(const char *list)
{
    char *copy = strdup(list);
    assert_non_null(copy);
    size_t n = 0;
    char *w[4096];
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t != NULL && n < 4096;
         t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(w[i], w[j]) == 0)
                fail_msg("token '%s' appears twice", w[i]);
    free(copy);
}

static const unsigned char key_a[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const unsigned char key_b[32] = {32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                        16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1};

/* Would a document with this text match this query (every query term among the document's)? */
static int matches(const unsigned char *key, const char *doc, const char *query)
{
    char *t = mh_search_tokens(doc, strlen(doc), 0);
    assert_non_null(t);
    char *dterms = mh_search_blind(key, t);
    assert_non_null(dterms);
    char *q = mh_search_query(key, query);
    int ok = q != NULL && subset(q, dterms);
    free(t);
    free(dterms);
    free(q);
    return ok;
}

/* ------------------------------------------------------------ tokens */

static void test_english(void **state)
{
    (void)state;
    char *t = toks("Hello, World! The Quarterly REPORT is due on 2026-11-28; see page 3 & a note.");
    assert_true(has(t, "hello"));
    assert_true(has(t, "world"));
    assert_true(has(t, "quarterly"));
    assert_true(has(t, "report"));
    assert_true(has(t, "2026"));
    assert_true(has(t, "11"));
    assert_true(has(t, "28"));
    assert_true(has(t, "3"));  /* one digit is a token */
    assert_false(has(t, "a")); /* one ASCII letter is not */
    assert_false(has(t, "Hello"));
    assert_false(has(t, "hello,"));
    assert_unique(t);
    /* order of first appearance, duplicates once */
    free(t);
    t = toks("the cat and THE Cat and the dog");
    assert_string_equal(t, "the cat and dog");
    free(t);
    t = toks("");
    assert_string_equal(t, "");
    free(t);
    t = toks(" ... !!! a b c ");
    assert_string_equal(t, "");
    free(t);
}

static void test_unicode_case(void **state)
{
    (void)state;
    /* Latin-1, Latin Extended-A, Greek (final sigma folded), Cyrillic, Vietnamese, full-width */
    char *t = toks("ÉCOLE Straße ŁÓDŹ ΟΔΥΣΣΕΥΣ Οδυσσεύς МОСКВА Москва TIẾNG ＡＢＣ１２３ İstanbul");
    assert_true(has(t, "école"));
    assert_true(has(t, "straße"));
    assert_true(has(t, "łódź"));
    assert_true(has(t, "οδυσσευσ"));
    assert_true(has(t, "οδυσσεύσ"));
    assert_true(has(t, "москва"));
    assert_true(has(t, "tiếng"));
    assert_true(has(t, "abc123"));
    assert_true(has(t, "istanbul"));
    /* МОСКВА and Москва are one token; the accented ΟΔΥΣΣΕΎΣ is another */
    assert_int_equal(count_items(t), 9);
    free(t);
    /* punctuation of other scripts separates; soft hyphens and joiners do not */
    t = toks("inter\xc2\xad"
             "national «quoted» don’t—stop …end");
    assert_true(has(t, "international"));
    assert_true(has(t, "quoted"));
    assert_true(has(t, "don"));
    assert_true(has(t, "stop"));
    assert_true(has(t, "end"));
    assert_false(has(t, "t"));
    free(t);
}

static void test_chinese(void **state)
{
    (void)state;
    char *t = toks("季度报告");
    assert_string_equal(t, "季度 度报 报告");
    free(t);
    /* punctuation ends a run; a character alone is a unigram; Latin and digits split from Han */
    t = toks("请查收：第3季度报告。谢谢！好");
    assert_true(has(t, "请查"));
    assert_true(has(t, "查收"));
    assert_true(has(t, "第"));
    assert_true(has(t, "3"));
    assert_true(has(t, "季度"));
    assert_true(has(t, "报告"));
    assert_true(has(t, "谢谢"));
    assert_true(has(t, "好"));
    assert_false(has(t, "收第"));
    assert_false(has(t, "告谢"));
    free(t);
    t = toks("Q3季度report");
    assert_string_equal(t, "q3 季度 report");
    free(t);
    /* traditional Chinese and Han extension B (four-byte UTF-8) */
    t = toks("臺灣電腦 𠀀𠀁");
    assert_true(has(t, "臺灣"));
    assert_true(has(t, "電腦"));
    assert_true(has(t, "𠀀𠀁"));
    free(t);
}

static void test_japanese_korean(void **state)
{
    (void)state;
    /* kanji, hiragana and katakana are one run; the katakana middle dot separates */
    char *t = toks("東京タワーへ行きます。ジョン・スミス");
    assert_true(has(t, "東京"));
    assert_true(has(t, "京タ"));
    assert_true(has(t, "タワ"));
    assert_true(has(t, "ワー"));
    assert_true(has(t, "行き"));
    assert_true(has(t, "ジョ"));
    assert_true(has(t, "スミ"));
    assert_false(has(t, "ンス"));
    free(t);
    /* half-width katakana is CJK too */
    t = toks("ｶﾀｶﾅ");
    assert_true(has(t, "ｶﾀ"));
    free(t);
    t = toks("회의 자료를 보내드립니다 안");
    assert_true(has(t, "회의"));
    assert_true(has(t, "자료"));
    assert_true(has(t, "료를"));
    assert_true(has(t, "안"));
    free(t);
}

static void test_email_addresses(void **state)
{
    (void)state;
    char *t = toks("From: \"Zhang San\" <Zhang.San+Lists@Mail.Example.CN>, bob@x.org.");
    assert_true(has(t, "zhang.san+lists@mail.example.cn"));
    assert_true(has(t, "zhang.san+lists"));
    assert_true(has(t, "mail.example.cn"));
    assert_true(has(t, "zhang"));
    assert_true(has(t, "san"));
    assert_true(has(t, "lists"));
    assert_true(has(t, "mail"));
    assert_true(has(t, "example"));
    assert_true(has(t, "cn"));
    assert_true(has(t, "bob@x.org")); /* without the sentence's final dot */
    assert_true(has(t, "x.org"));
    assert_false(has(t, "san+lists@mail.example.cn")); /* no address starts inside another */
    assert_false(has(t, "lists@mail.example.cn"));
    free(t);
    /* an address right after Chinese text */
    t = toks("请联系alice@example.com谢谢");
    assert_true(has(t, "alice@example.com"));
    assert_true(has(t, "请联"));
    free(t);
    /* not addresses */
    t = toks("a@b user@localhost x@y.1 @foo.com .dot.@example.com");
    assert_false(has(t, "user@localhost"));
    assert_false(has(t, "x@y.1"));
    assert_false(has(t, "dot@example.com")); /* a local part does not end with a dot */
    assert_true(has(t, "dot"));
    assert_true(has(t, "localhost"));
    free(t);
}

static void test_limits(void **state)
{
    (void)state;
    /* a long word is cut at 64 bytes on a character boundary */
    char buf[400];
    memset(buf, 'x', 100);
    buf[100] = '\0';
    char *t = toks(buf);
    assert_int_equal(strlen(t), 64);
    free(t);
    /* 63 ASCII bytes and then two-byte letters: 64 is inside one, so 63 are kept */
    memset(buf, 'y', 63);
    strcpy(buf + 63, "ééééé");
    t = toks(buf);
    assert_int_equal(strlen(t), 63);
    free(t);
    /* three-byte Cyrillic? (two-byte) and Greek: always whole characters */
    buf[0] = '\0';
    for (int i = 0; i < 50; i++)
        strcat(buf, "ж");
    t = toks(buf);
    assert_int_equal(strlen(t), 64);
    free(t);
    /* max_terms */
    const char *many = "one two three four five six seven";
    t = mh_search_tokens(many, strlen(many), 3);
    assert_string_equal(t, "one two three");
    free(t);
    /* len is respected (no NUL needed) */
    t = mh_search_tokens("alpha beta", 5, 0);
    assert_string_equal(t, "alpha");
    free(t);
    /* invalid UTF-8 separates, never crashes */
    t = toks("abc\xff\xfe"
             "def\xc3(ghi\xe4\xb8");
    assert_string_equal(t, "abc def ghi");
    free(t);
    t = mh_search_tokens(NULL, 0, 0);
    assert_string_equal(t, "");
    free(t);
}

static void test_many_tokens(void **state)
{
    (void)state;
    /* enough unique tokens to grow the hash table several times */
    size_t cap = 20000 * 8;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = 0;
    for (int i = 0; i < 20000; i++)
        len += (size_t)snprintf(text + len, cap - len, "w%d ", i % 5000);
    char *t = mh_search_tokens(text, len, 0);
    assert_non_null(t);
    assert_int_equal(count_items(t), 5000);
    assert_true(has(t, "w0"));
    assert_true(has(t, "w4999"));
    free(t);
    t = mh_search_tokens(text, len, 1000);
    assert_int_equal(count_items(t), 1000);
    free(t);
    free(text);
}

/* ------------------------------------------------------------ keys and terms */

static void test_key(void **state)
{
    (void)state;
    unsigned char k1[32], k2[32], k3[32], want[32];
    unsigned int n = 0;
    mh_search_key(key_a, k1);
    mh_search_key(key_a, k2);
    mh_search_key(key_b, k3);
    assert_memory_equal(k1, k2, 32);
    assert_memory_not_equal(k1, k3, 32);
    assert_memory_not_equal(k1, key_a, 32);
    assert_non_null(HMAC(EVP_sha256(), key_a, 32, (const unsigned char *)"mailhub search v2", 17, want, &n));
    assert_int_equal(n, 32);
    assert_memory_equal(k1, want, 32);
}

static void b32_16(const unsigned char *d, char out[17])
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz234567";
    /* bit by bit, independently of the implementation */
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int b = 0; b < 5; b++) {
            int bit = i * 5 + b;
            v = v << 1 | ((d[bit / 8] >> (7 - bit % 8)) & 1u);
        }
        out[i] = al[v];
    }
    out[16] = '\0';
}

/* 1 when the 16-character term a is less than b as an 80-bit number (RFC 4648 base32, lower case). */
static int b32_less(const char *a, const char *b)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz234567";
    for (int i = 0; i < 16; i++) {
        long x = strchr(al, a[i]) - al, y = strchr(al, b[i]) - al;
        if (x != y)
            return x < y;
    }
    return 0;
}

/* One AES-256 block, by the EVP interface (the reference the terms are checked against). */
static void aes256(const unsigned char key[32], const unsigned char in[16], unsigned char out[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    assert_non_null(c);
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_ecb(), NULL, key, NULL), 1);
    assert_int_equal(EVP_CIPHER_CTX_set_padding(c, 0), 1);
    assert_int_equal(EVP_EncryptUpdate(c, out, &n, in, 16), 1);
    assert_int_equal(n, 16);
    EVP_CIPHER_CTX_free(c);
}

static void test_blind(void **state)
{
    (void)state;
    char *t1 = mh_search_blind(key_a, "季度 report alice@example.com");
    char *t2 = mh_search_blind(key_a, "季度 report alice@example.com");
    char *t3 = mh_search_blind(key_b, "季度 report alice@example.com");
    assert_non_null(t1);
    assert_non_null(t2);
    assert_non_null(t3);
    assert_string_equal(t1, t2); /* stable */
    assert_int_equal(strlen(t1), 3 * 16 + 2);
    assert_int_equal(count_items(t1), 3);
    /* key-dependent: no term in common */
    char *copy = strdup(t3);
    for (char *save = NULL, *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
        assert_false(has(t1, w));
    free(copy);
    /* opaque: base32 letters and digits only, nothing of the plaintext */
    for (const char *p = t1; *p; p++)
        assert_true(*p == ' ' || (*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7'));
    assert_null(strstr(t1, "report"));
    assert_null(strstr(t1, "alice"));
    assert_null(strstr(t1, "example"));
    /* each term is base32(AES-256(key, block(token)))[0:16]; "report" is short: itself, padded, length 6 */
    unsigned char blk[16] = {'r', 'e', 'p', 'o', 'r', 't'}, d[32];
    blk[15] = 6;
    char want[17];
    aes256(key_a, blk, d);
    b32_16(d, want);
    assert_true(has(t1, want));
    /* "alice@example.com" (17 bytes) is long: SHA-256("mailhub term" NUL token), high bit of byte 15 set */
    unsigned char msg[64] = "mailhub term";
    memcpy(msg + 13, "alice@example.com", 17);
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(msg, 30, d, &n, EVP_sha256(), NULL), 1);
    memcpy(blk, d, 16);
    blk[15] |= 0x80;
    aes256(key_a, blk, d);
    b32_16(d, want);
    assert_true(has(t1, want));
    /* sorted and unique: nothing of the order of the words is kept */
    char *r1 = mh_search_blind(key_a, "alice@example.com report 季度 report");
    assert_non_null(r1);
    assert_string_equal(r1, t1);
    free(r1);
    assert_true(b32_less(t1, t1 + 17) && b32_less(t1 + 17, t1 + 34)); /* by value */
    /* the AES the check above uses is AES-256: FIPS-197 appendix C.3 */
    static const unsigned char fips_pt[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                              0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    static const unsigned char fips_ct[16] = {0x8e, 0xa2, 0xb7, 0xca, 0x51, 0x67, 0x45, 0xbf,
                                              0xea, 0xfc, 0x49, 0x90, 0x4b, 0x49, 0x60, 0x89};
    unsigned char fips_key[32];
    for (int i = 0; i < 32; i++)
        fips_key[i] = (unsigned char)i;
    aes256(fips_key, fips_pt, d);
    assert_memory_equal(d, fips_ct, 16);
    /* a 15-byte token is still short, a 16-byte one is long: different blocks, different terms */
    char *b15 = mh_search_blind(key_a, "abcdefghijklmno"), *b16 = mh_search_blind(key_a, "abcdefghijklmnop");
    assert_non_null(b15);
    assert_non_null(b16);
    unsigned char s15[16] = "abcdefghijklmno";
    s15[15] = 15;
    aes256(key_a, s15, d);
    b32_16(d, want);
    assert_string_equal(b15, want);
    assert_string_not_equal(b15, b16);
    free(b15);
    free(b16);
    /* many terms (the sort's longer gaps): all there, each once, in order */
    size_t cap = 3000 * 12 + 1, at = 0;
    char *many = malloc(cap);
    assert_non_null(many);
    for (int i = 0; i < 3000; i++)
        at += (size_t)snprintf(many + at, cap - at, "%sw%d", i ? " " : "", i * 7919 % 10007);
    char *mt = mh_search_blind(key_a, many);
    assert_non_null(mt);
    assert_int_equal(count_items(mt), 3000);
    for (size_t i = 17; i < strlen(mt); i += 17)
        assert_true(b32_less(mt + i - 17, mt + i));
    free(mt);
    free(many);
    free(t1);
    free(t2);
    free(t3);
    char *e = mh_search_blind(key_a, "");
    assert_string_equal(e, "");
    free(e);
    e = mh_search_blind(key_a, "   ");
    assert_string_equal(e, "");
    free(e);
}

static void test_query(void **state)
{
    (void)state;
    unsigned char sk[32];
    mh_search_key(key_a, sk);
    const char *doc = "Subject: 第三季度报告 (Q3 Quarterly Report)\n"
                      "From: Alice Chen <alice.chen@example.com>\n"
                      "Hello Bob, 東京タワーの写真を送ります. Встреча в Москве. Übermorgen um 10 Uhr.";
    assert_true(matches(sk, doc, "季度"));
    assert_true(matches(sk, doc, "报告"));
    assert_true(matches(sk, doc, "季度报告"));
    assert_true(matches(sk, doc, "  报告   季度  "));
    assert_true(matches(sk, doc, "quarterly REPORT"));
    assert_true(matches(sk, doc, "q3"));
    assert_true(matches(sk, doc, "alice.chen@example.com"));
    assert_true(matches(sk, doc, "ALICE.CHEN@EXAMPLE.COM"));
    assert_true(matches(sk, doc, "alice"));
    assert_true(matches(sk, doc, "example.com"));
    assert_true(matches(sk, doc, "東京タワー"));
    assert_true(matches(sk, doc, "写真"));
    assert_true(matches(sk, doc, "москве"));
    assert_true(matches(sk, doc, "übermorgen"));
    assert_true(matches(sk, doc, "report 季度 alice"));
    /* what must not match */
    assert_false(matches(sk, doc, "年度报告"));
    assert_false(matches(sk, doc, "季报"));
    assert_false(matches(sk, doc, "report annual"));
    assert_false(matches(sk, doc, "bob@example.com"));
    assert_false(matches(sk, doc, "repor"));
    assert_false(matches(sk, doc, "大阪"));
    /* another user's key never matches */
    unsigned char sk2[32];
    mh_search_key(key_b, sk2);
    char *t = mh_search_tokens(doc, strlen(doc), 0);
    char *dterms = mh_search_blind(sk, t);
    char *q = mh_search_query(sk2, "报告");
    assert_non_null(q);
    assert_false(subset(q, dterms));
    free(q);
    free(dterms);
    free(t);
    /* a query without a token */
    assert_null(mh_search_query(sk, ""));
    assert_null(mh_search_query(sk, "   "));
    assert_null(mh_search_query(sk, "a ! ? -- ..."));
    assert_null(mh_search_query(sk, NULL));
    /* the query tokens: an address whole, CJK as bigrams, unique */
    char *qt = mh_search_query_tokens("Report 季度报告 report x@example.org");
    assert_string_equal(qt, "report 季度 度报 报告 x@example.org");
    free(qt);
    /* at most MH_SEARCH_QUERY_MAX terms */
    char big[2000] = "";
    for (int i = 0; i < 100; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "w%d ", i);
    q = mh_search_query(sk, big);
    assert_non_null(q);
    assert_int_equal(count_items(q), MH_SEARCH_QUERY_MAX);
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_english),         cmocka_unit_test(test_unicode_case),
        cmocka_unit_test(test_chinese),         cmocka_unit_test(test_japanese_korean),
        cmocka_unit_test(test_email_addresses), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_many_tokens),     cmocka_unit_test(test_key),
        cmocka_unit_test(test_blind),           cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
