#!/bin/sh
# gen_mbox checked on its own (without mailhub): the mboxrd it writes splits
# back, unquoted, into exactly the messages its manifest describes; it is
# deterministic; --dup-every repeats messages; --maildir writes the same
# messages with flags in their names and the date as mtime.
. "$top_srcdir/tests/integration/lib.sh"
GEN="$top_builddir/tests/tools/gen_mbox"

"$GEN" --count 300 --seed 5 --manifest "$T/m.txt" >"$T/a.mbox"
check "writes 300 manifest lines" [ "$(wc -l <"$T/m.txt")" -eq 300 ]
check "writes 300 From_ lines" [ "$(grep -c '^From ' "$T/a.mbox")" -eq 300 ]
check "distinct Message-IDs" [ "$(cut -f2 "$T/m.txt" | sort -u | wc -l)" -eq 300 ]

# Split the mbox the mboxrd way: a From_ line starts a message, one '>' comes
# off /^>+From /, the line after each message (empty, or CR alone) is the separator.
mkdir "$T/split"
awk -v dir="$T/split" '
    function flush() { if (n >= 0) close(f) }
    /^From / { flush(); n++; f = sprintf("%s/%06d", dir, n); have = 0; next }
    {
        line = $0
        if (line ~ /^>+From /) line = substr(line, 2)
        if (have) printf "%s\n", prev > f
        prev = line; have = 1
    }
    BEGIN { n = -1 }
    END { flush() }' "$T/a.mbox"
: >"$T/split.txt"
i=0
for f in "$T"/split/*; do
    printf '%d\t%s\t%s\n' "$i" "$(wc -c <"$f" | tr -d ' ')" "$(sha256sum "$f" | cut -d' ' -f1)" >>"$T/split.txt"
    i=$((i + 1))
done
cut -f1,3,4 "$T/m.txt" >"$T/want.txt"
check "messages split back from the mbox match the manifest (size, SHA-256)" cmp -s "$T/split.txt" "$T/want.txt"
check "some body lines needed mboxrd quoting" grep -q '^>>*From ' "$T/a.mbox"
check "GBK subjects" grep -q '=?GBK?B?' "$T/a.mbox"
check "UTF-8 B subjects" grep -q '=?UTF-8?B?' "$T/a.mbox"
check "UTF-8 Q subjects" grep -q '=?UTF-8?Q?' "$T/a.mbox"
check "base64 attachments" grep -q 'Content-Disposition: attachment' "$T/a.mbox"
check "multipart/alternative" grep -q 'multipart/alternative' "$T/a.mbox"
check "decoded subjects in UTF-8 (Chinese)" grep -q '第[0-9]*期' "$T/m.txt"

"$GEN" --count 300 --seed 5 >"$T/b.mbox"
check "deterministic" cmp -s "$T/a.mbox" "$T/b.mbox"
"$GEN" --count 300 --seed 6 >"$T/c.mbox"
check "another seed, other mail" sh -c "! cmp -s '$T/a.mbox' '$T/c.mbox'"

"$GEN" --count 100 --seed 5 --dup-every 10 --manifest "$T/d.txt" >/dev/null
check "--dup-every 10: 90 distinct messages in 100" [ "$(cut -f4 "$T/d.txt" | sort -u | wc -l)" -eq 90 ]

"$GEN" --count 60 --seed 7 --maildir "$T/md" --manifest "$T/md.txt"
check "--maildir: 60 files" [ "$(find "$T/md" -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l)" -eq 60 ]
check "--maildir: Maildir++ folders" [ -d "$T/md/.Sent/cur" ] && [ -d "$T/md/cur" ] && [ -d "$T/md/tmp" ]
find "$T/md" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | while read -r f; do
    sha=$(sha256sum "$f" | cut -d' ' -f1)
    grep -q "$sha" "$T/md.txt" || echo "$f"
done >"$T/md-unknown.txt"
check "--maildir: every file is a manifest message" [ ! -s "$T/md-unknown.txt" ]
check "--maildir: flags in file names" sh -c "ls '$T/md/cur' | grep -q ':2,.*S'"
check "--maildir: folder and flags columns" sh -c "cut -f6 '$T/md.txt' | grep -qx 'Archive/2024'"

check "usage error without --count" sh -c "! '$GEN' --seed 1 >/dev/null 2>&1"
finish
