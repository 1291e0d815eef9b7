#!/usr/bin/python3
"""fill_maildir.py: fill a Dovecot Maildir++ mailbox fast with realistic generated mail.

    fill_maildir.py --maildir DIR --count N [--seed S] [--first I] [--manifest FILE] [--owner USER]
                    [--folders "INBOX=50,Sent=20,..."]
    fill_maildir.py --message --seed S --index I [--folder F] > one.eml
    fill_maildir.py --verify-manifest FILE --maildir DIR

Writes the messages straight into DIR (a Maildir++ tree as Dovecot's
`maildir:~/Maildir` uses: INBOX in DIR/{cur,new,tmp}, a folder "A/B" in
DIR/.A.B with its name in IMAP modified UTF-7), with the flags in the file
names (":2,FRS"), some unseen INBOX messages in new/, each file's mtime the
message date (Dovecot's INTERNALDATE).  As root the files are chowned to
--owner (default nobody, Dovecot's mail user in tests/peers/dovecot.sh).

Lines end in CRLF, so the bytes on disk are exactly what an IMAP FETCH
BODY[] or a POP3 RETR returns (Dovecot only adds a CR before a bare LF):
the manifest's sha256 is what mailhub must store.

The mail varies as real mail does: most messages 1.5-20 KB, about 1 in 100 of
100-500 KB (base64 attachments: pdf, png, zip, docx); text/plain in ASCII,
UTF-8 (8bit and quoted-printable), GBK and Big5 (base64), text/html,
multipart/alternative, multipart/mixed; subjects in ASCII, UTF-8 (RFC 2047 B
and Q), GBK, GB2312 and Big5; encoded display names; long folded headers.
The same seed and index always give the same bytes (message I of seed S does
not depend on the count), so --first lets a test add more later.

The manifest (--manifest, tab-separated, one line per message, appended to
when --first > 0):
    index  folder  sha256  size  flags  message_id  subject
folder is the IMAP name with "/" as separator in UTF-8; flags are IMAP
flags, space-separated (may be empty); subject is the decoded Subject.
"""
import argparse
import base64
import hashlib
import os
import quopri
import random
import sys
import time

WORDS = ("the meeting report quarter budget project schedule review please attached find thanks regards "
         "update team customer order invoice shipping delivery account password security release version "
         "server database migration weekend holiday office lunch call tomorrow today next week month results "
         "numbers growth sales marketing design draft final approved pending question answer issue ticket "
         "support service contract signed legal hiring candidate interview travel flight hotel booking confirm "
         "cancel agenda notes minutes action items deadline and of to for with on in is we you our your this "
         "that will can be have").split()
ZH_S = ("关于下周会议的通知 季度财务报告 您的订单已发货 项目进度更新 欢迎加入我们的团队 请查收附件 年终总结 "
        "系统维护通知 会议纪要 产品发布计划 客户反馈汇总 请确认收货地址 周末活动安排 合同已签署 招聘面试安排 "
        "数据库迁移方案 安全更新提醒 出差行程确认 预算审批 新年快乐").split()
ZH_T = ("關於下週會議的通知 季度財務報告 您的訂單已出貨 專案進度更新 歡迎加入我們的團隊 請查收附件 年終總結 "
        "系統維護通知 會議紀要 產品發佈計畫 客戶意見彙整 週末活動安排 合約已簽署 數據庫遷移方案").split()
UTF8_SUBJ = ("Réunion de l'équipe à 14h", "Grüße aus München", "Добрый день, коллеги", "Ελληνικά: σημειώσεις",
             "日本語のテスト件名", "Café & crème brûlée", "Año nuevo, señor Muñoz", "🎉 Party on Friday 🎉",
             "Zürich → Genève: Fahrplan", "会议纪要 (draft)", "Résumé — candidate #2", "한국어 제목 테스트")
ASCII_SUBJ = ("Quarterly report", "Meeting tomorrow", "Your order has shipped", "Invoice attached",
              "Project status update", "Lunch on Friday?", "Re: budget review", "Fwd: travel booking",
              "Security notice", "Weekly newsletter", "Action items from today", "Contract draft v3",
              "Welcome to the team", "Password reset", "Release notes", "Server maintenance window")
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar",
         "peggy", "trent", "wang.wei", "li.na", "zhang.min", "chen.jie", "lin.mei", "huang.wen")
DISPLAY_ZH = ("王伟", "李娜", "张敏", "陈杰", "林美", "黃文")
DOMAINS = ("example.org", "example.com", "mail.example.net", "corp.example", "example.cn", "example.com.tw")
ATTACH = (("application/pdf", "pdf"), ("image/png", "png"), ("application/zip", "zip"),
          ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"))
WDAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DEFAULT_FOLDERS = "INBOX=50,Sent=20,Archive/2024=12,Drafts=5,项目/报告=8,Lists/dovecot-users=5"


def mutf7(name):
    """IMAP modified UTF-7 (RFC 3501 5.1.3) of one hierarchy level."""
    out, buf = [], []

    def flush():
        if buf:
            b = base64.b64encode("".join(buf).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append("&" + b + "-")
            buf.clear()
    for c in name:
        if 0x20 <= ord(c) <= 0x7e:
            flush()
            out.append("&-" if c == "&" else c)
        else:
            buf.append(c)
    flush()
    return "".join(out)


def folder_dir(root, folder):
    """The Maildir++ directory of an IMAP folder ("/"-separated, UTF-8)."""
    if folder == "INBOX":
        return root
    return os.path.join(root, "." + ".".join(mutf7(p) for p in folder.split("/")))


def encoded_words(text, charset, kind):
    """RFC 2047 encoded words for text, folded (CRLF SP) so that no word exceeds 75 characters."""
    words, cur = [], ""
    for ch in text:
        cand = cur + ch
        raw = cand.encode(charset)
        n = len(base64.b64encode(raw)) if kind == "B" else len(qencode(raw))
        if n > 75 - len(charset) - 7 and cur:
            words.append(cur)
            cur = ch
        else:
            cur = cand
    if cur:
        words.append(cur)
    enc = []
    for w in words:
        raw = w.encode(charset)
        if kind == "B":
            enc.append("=?%s?B?%s?=" % (charset, base64.b64encode(raw).decode()))
        else:
            enc.append("=?%s?Q?%s?=" % (charset, qencode(raw)))
    return "\r\n ".join(enc)


def qencode(raw):
    out = []
    for b in raw:
        c = chr(b)
        if c == " ":
            out.append("_")
        elif c.isascii() and c.isalnum():
            out.append(c)
        else:
            out.append("=%02X" % b)
    return "".join(out)


def crlf(s):
    return s.replace("\r\n", "\n").replace("\n", "\r\n")


class Gen:
    def __init__(self, seed, index):
        self.r = random.Random("mailhub-fill:%d:%d" % (seed, index))
        self.seed, self.index = seed, index

    def words(self, nbytes, zh=None):
        """Wrapped text of about nbytes, lines of at most 72 columns, some paragraphs."""
        r = self.r
        lines, total = [], 0
        while total < nbytes:
            k = r.randint(6, 11)
            ws = r.choices(WORDS, k=k)
            if zh is not None and r.random() < 0.15:
                ws[r.randrange(k)] = r.choice(zh)
            line = " ".join(ws)
            if r.random() < 0.01:
                line = "From the desk of the director: " + line
            elif r.random() < 0.005:
                line = ".leading dot " + line
            lines.append(line)
            total += len(line) + 2
            if r.random() < 0.15:
                lines.append("")
        lines[-1] += "."
        return "\n".join(lines) + "\n"

    def zh_text(self, nbytes, pool):
        r = self.r
        parts, total = [], 0
        while total < nbytes:
            s = r.choice(pool)
            parts.append(s + ("。\n" if r.random() < 0.2 else "，"))
            total += len(s) * 2 + 2
        return "".join(parts) + "\n"

    def text_part(self, size):
        r = self.r
        k = r.randrange(20)
        if k < 2:
            body = base64.encodebytes(self.zh_text(size * 3 // 4, ZH_S).encode("gbk")).decode()
            return "Content-Type: text/plain; charset=GBK\nContent-Transfer-Encoding: base64\n\n" + body
        if k < 3:
            body = base64.encodebytes(self.zh_text(size * 3 // 4, ZH_T).encode("big5")).decode()
            return "Content-Type: text/plain; charset=Big5\nContent-Transfer-Encoding: base64\n\n" + body
        if k < 8:
            t = self.words(size, ZH_S)
            body = quopri.encodestring(t.encode("utf-8")).decode("ascii")
            return ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
                    + body)
        if k < 10:
            return ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                    + self.words(size, ZH_S))
        return ("Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n"
                + self.words(size))

    def html_part(self, size):
        t = self.words(max(size - 150, 100), ZH_S)
        paras = "</p>\n<p>".join(p.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                                  for p in t.split("\n\n"))
        html = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mail</title></head>\n"
                "<body style=\"font-family: sans-serif\">\n<p>" + paras + "</p>\n</body></html>\n")
        body = quopri.encodestring(html.encode("utf-8")).decode("ascii")
        return "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + body

    def attachment(self, size, n):
        r = self.r
        ctype, ext = r.choice(ATTACH)
        data = r.randbytes(max(size * 3 // 4, 64))
        name = "file-%d-%d.%s" % (self.index, n, ext)
        if r.random() < 0.3:
            name = "报告-%d.%s" % (self.index, ext)
            disp = "attachment; filename*=UTF-8''" + "".join(
                c if c.isascii() and c.isalnum() or c in ".-" else "".join("%%%02X" % b for b in c.encode())
                for c in name)
        else:
            disp = 'attachment; filename="%s"' % name
        return ("Content-Type: %s; name=\"%s\"\nContent-Disposition: %s\nContent-Transfer-Encoding: base64\n\n"
                % (ctype, name if name.isascii() else "attachment." + ext, disp)
                + base64.encodebytes(data).decode())

    def message(self, folder_weights):
        """(bytes, folder, flags, in_new, message_id, subject, date)"""
        r = self.r
        names = [f for f, _ in folder_weights]
        folder = r.choices(names, weights=[w for _, w in folder_weights])[0]
        flags = []
        if folder == "Drafts":
            flags.append("\\Draft")
        if r.random() < 0.1:
            flags.append("\\Flagged")
        if r.random() < 0.25:
            flags.append("\\Answered")
        if folder != "INBOX" or r.random() < 0.8:
            flags.append("\\Seen")
        if r.random() < 0.03:
            flags.append("$Forwarded")
        in_new = folder == "INBOX" and "\\Seen" not in flags and r.random() < 0.5
        if in_new:
            flags = []

        date = 1640995200 + self.index * 1800 + r.randrange(1800)
        zone = r.choice((0, 800, -500, 100, 530, -800))
        lt = time.gmtime(date + (zone // 100) * 3600 + (zone % 100) * 60)
        datestr = "%s, %02d %s %04d %02d:%02d:%02d %+05d" % (WDAY[lt.tm_wday], lt.tm_mday, MON[lt.tm_mon - 1],
                                                           lt.tm_year, lt.tm_hour, lt.tm_min, lt.tm_sec, zone)
        frm, fdom = r.choice(NAMES), r.choice(DOMAINS)
        to, tdom = r.choice(NAMES), r.choice(DOMAINS)
        sender = "%s@%s" % (frm, fdom)
        mid = "<%d.%d.%016x@fill.mailhub.test>" % (self.seed, self.index, r.getrandbits(64))

        roll = r.random()
        if roll < 0.01:
            size = r.randint(100 * 1024, 500 * 1024)
        elif roll < 0.88:
            size = int(1500 * (3600 / 1500) ** r.random())
        else:
            size = int(3600 * (20000 / 3600) ** r.random())

        h = ["Return-Path: <%s>" % sender,
             "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\n\tby imap.example.org (Postfix) with ESMTPS id %012X"
             "\n\tfor <%s@%s>; %s" % (r.randrange(9), fdom, r.randrange(9), fdom, r.randint(1, 250),
                                       r.getrandbits(48), to, tdom, datestr),
             "Date: " + datestr]
        if r.random() < 0.2:
            h.append("From: %s <%s>" % (encoded_words(r.choice(DISPLAY_ZH), "UTF-8", "B"), sender))
        else:
            h.append("From: %s <%s>" % (frm.replace(".", " ").title(), sender))
        h.append("To: %s@%s" % (to, tdom))
        if r.random() < 0.3:
            cc = ", ".join("%s@%s" % (r.choice(NAMES), r.choice(DOMAINS)) for _ in range(r.randint(1, 8)))
            h.append("Cc: " + cc.replace(", ", ",\n ") if len(cc) > 70 else "Cc: " + cc)
        h.append("Message-ID: " + mid)
        if r.random() < 0.3:
            h.append("In-Reply-To: <%d.%016x@fill.mailhub.test>" % (max(self.index - 1, 0), r.getrandbits(64)))

        sk = r.random()
        prefix = "Re: " if r.random() < 0.15 else ""
        if sk < 0.40:
            subj = "%s #%d" % (r.choice(ASCII_SUBJ), self.index)
            h.append("Subject: " + prefix + subj)
        elif sk < 0.55:
            subj = "%s #%d" % (r.choice(UTF8_SUBJ), self.index)
            h.append("Subject: " + prefix + encoded_words(subj, "UTF-8", "B"))
        elif sk < 0.65:
            subj = "%s #%d" % (r.choice(UTF8_SUBJ), self.index)
            h.append("Subject: " + prefix + encoded_words(subj, "UTF-8", "Q"))
        elif sk < 0.80:
            subj = "%s 第%d期" % (r.choice(ZH_S), self.index)
            h.append("Subject: " + prefix + encoded_words(subj, "GBK", "B"))
        elif sk < 0.85:
            subj = "%s 第%d期" % (r.choice(ZH_S), self.index)
            h.append("Subject: " + prefix + encoded_words(subj, "GB2312", "B"))
        else:
            subj = "%s 第%d期" % (r.choice(ZH_T), self.index)
            h.append("Subject: " + prefix + encoded_words(subj, "Big5", "B"))
        subj = prefix + subj
        h.append("X-Mailer: %s" % r.choice(("Foxmail 7.2", "Microsoft Outlook 16.0", "Thunderbird 115.5.0",
                                            "Apple Mail (2.3731)", "mailhub-fill")))
        h.append("MIME-Version: 1.0")
        head = "\n".join(h) + "\n"
        body_size = max(size - len(head) - 200, 200)
        bnd = "=_fill_%016x" % r.getrandbits(64)
        shape = r.random()
        if roll < 0.01 or shape > 0.87:
            natt = 1 if roll >= 0.01 or r.random() < 0.7 else 2
            text = r.randint(800, 4000) if roll < 0.01 else body_size // 4 + 100
            att = max(body_size - text, 256) // natt
            body = ("Content-Type: multipart/mixed; boundary=\"%s\"\n\nThis is a multi-part message in MIME format.\n"
                    "\n--%s\n" % (bnd, bnd) + self.text_part(text))
            for n in range(natt):
                body += "\n--%s\n" % bnd + self.attachment(att, n)
            body += "\n--%s--\n" % bnd
        elif shape < 0.35:
            body = self.text_part(body_size)
        elif shape < 0.55:
            body = self.html_part(body_size)
        else:
            body = ("Content-Type: multipart/alternative; boundary=\"%s\"\n\n--%s\n" % (bnd, bnd)
                    + self.text_part(body_size * 2 // 5) + "\n--%s\n" % bnd + self.html_part(body_size * 3 // 5)
                    + "\n--%s--\n" % bnd)
        raw = crlf(head + body).encode("utf-8")
        return raw, folder, " ".join(flags), in_new, mid, subj, date


def parse_folders(spec):
    out = []
    for item in spec.split(","):
        name, _, w = item.rpartition("=")
        out.append((name, float(w)))
    return out


def make_message(seed, index, folders=DEFAULT_FOLDERS):
    return Gen(seed, index).message(parse_folders(folders))


LETTER = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}


def ensure_folder(root, folder, uid, gid, made):
    d = folder_dir(root, folder)
    if d in made:
        return d
    for sub in ("", "cur", "new", "tmp"):
        p = os.path.join(d, sub)
        os.makedirs(p, exist_ok=True)
        if uid is not None:
            os.chown(p, uid, gid)
    if folder != "INBOX":
        mf = os.path.join(d, "maildirfolder")
        open(mf, "a").close()
        if uid is not None:
            os.chown(mf, uid, gid)
    made.add(d)
    return d


def fill(args):
    folders = parse_folders(args.folders)
    uid = gid = None
    if os.geteuid() == 0 and args.owner:
        import pwd
        pw = pwd.getpwnam(args.owner)
        uid, gid = pw.pw_uid, pw.pw_gid
    made = set()
    ensure_folder(args.maildir, "INBOX", uid, gid, made)
    man = None
    if args.manifest:
        man = open(args.manifest, "a" if args.first > 0 else "w", encoding="utf-8")
    total = 0
    host = "fill"
    for i in range(args.first, args.first + args.count):
        raw, folder, flags, in_new, mid, subj, date = Gen(args.seed, i).message(folders)
        d = ensure_folder(args.maildir, folder, uid, gid, made)
        base = "%d.M%dP%d.%s,S=%d,W=%d" % (date, i, args.seed, host, len(raw), len(raw))
        if in_new:
            path = os.path.join(d, "new", base)
        else:
            letters = "".join(sorted(LETTER[f] for f in flags.split() if f in LETTER))
            path = os.path.join(d, "cur", base + ":2," + letters)
        # keywords ($Forwarded) live in dovecot-keywords: leave them out of the file name,
        # and out of the manifest's flags, so the manifest is what the server reports
        flags = " ".join(f for f in flags.split() if f in LETTER)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fp:
            fp.write(raw)
        os.utime(path, (date, date))
        if uid is not None:
            os.chown(path, uid, gid)
        total += len(raw)
        if man:
            man.write("%d\t%s\t%s\t%d\t%s\t%s\t%s\n" % (i, folder, hashlib.sha256(raw).hexdigest(), len(raw),
                                                       flags, mid, subj.replace("\t", " ")))
    if man:
        man.close()
    print("%d messages, %d bytes, %d folders in %s" % (args.count, total, len(made), args.maildir),
          file=sys.stderr)


def verify_manifest(args):
    """Every manifest line has a file of that sha256 in its folder's directory, and nothing else is there."""
    want = {}
    for line in open(args.verify_manifest, encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        want.setdefault(f[1], []).append(f[2])
    bad = 0
    for folder, shas in want.items():
        d = folder_dir(args.maildir, folder)
        got = []
        for sub in ("cur", "new"):
            for n in os.listdir(os.path.join(d, sub)):
                with open(os.path.join(d, sub, n), "rb") as fp:
                    got.append(hashlib.sha256(fp.read()).hexdigest())
        if sorted(got) != sorted(shas):
            print("folder %s: %d files, manifest %d" % (folder, len(got), len(shas)), file=sys.stderr)
            bad += 1
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--maildir")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first", type=int, default=0, help="index of the first message (default 0)")
    ap.add_argument("--manifest")
    ap.add_argument("--owner", default="nobody", help="as root, chown to this user (default nobody)")
    ap.add_argument("--folders", default=DEFAULT_FOLDERS, help="FOLDER=WEIGHT,... (default %(default)s)")
    ap.add_argument("--message", action="store_true", help="write message --index of --seed to stdout")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--verify-manifest")
    args = ap.parse_args()
    if args.message:
        raw = make_message(args.seed, args.index, args.folders)[0]
        sys.stdout.buffer.write(raw)
        return 0
    if not args.maildir:
        ap.error("--maildir is required")
    if args.verify_manifest:
        return verify_manifest(args)
    fill(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
