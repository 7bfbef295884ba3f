r"""Generate the embedded demo dataset under data/raw/: support tickets from four sources.

Run from the repo root:  python scripts/make_demo_data.py
Deterministic: one random.Random(SEED), no clock, no set iteration; every run writes the same bytes.

Files, 3,288 units in all (paths, formats and fields are the ones data.sources in params.yaml expects):
  data/raw/helpdesk/tickets-2026-q{1,2}.jsonl  {"id","text","label","created"}    CC-BY-4.0
  data/raw/email/export.csv                    message_id,message,category        CC0-1.0
  data/raw/chat/transcripts.parquet            utterance,intent,customer_id       LicenseRef-Acme-Internal
  data/raw/forum/scraped.jsonl                 {"text","label"}                   CC-BY-NC-4.0 (not on the allowlist)

Each text is composed: an opening (none, greeting, angry, terse), one of 16-17 problem phrasings per label with
slot fillers (products, plans, order numbers, amounts, dates, devices, error codes), optional context sentences
and closing, then style noise (lowercase, lost punctuation, typos). E-mails are longer, a few multi-line; chat
is short utterances, several per customer_id. Neighbouring labels share vocabulary on purpose (refund/billing/
cancellation, account_access/security, bug_report/technical_setup, product_question/feature_request), 12-15%
of helpdesk, e-mail and forum tickets mention a second topic, and 3% of good rows carry a neighbouring label
(label noise: 94 rows), so a classifier should land around 80-95%, not 100%. Good rows are unique under
the pipeline's normalization (NFKC, casefold, collapsed whitespace), so the only duplicates are the planted ones.

Defects planted on purpose, at pseudo-random positions interleaved with the good rows:
  malformed JSONL     10  helpdesk 4+4, forum 2: truncated object (2), trailing comma (2), single quotes (2),
                          bare text line, `{}` (valid JSON, but no text and no label), a JSON array, "text" a number
  empty text          15  "", " ", "\t", "\n", ... (helpdesk 6, email 4, chat 3, forum 2)
  unknown label       15  misc, billing_, Shipping, other, urgent, general, refunds, "", account access, tech,
                          complaint, N/A, spam, null (an empty field once in the CSV), and one helpdesk line
                          without a "label" key
  overlong             5  > 2,000 characters, a pasted device log (helpdesk 2, email 2, forum 1)
  exact duplicate     60  an earlier text verbatim, from the same file or an earlier source; 52 keep the label,
                          8 carry a neighbouring label (label conflicts)
  near-duplicate      40  an earlier text with a punctuation or one-word change, sometimes also a case change
                          or doubled spaces (so it is still a different record after normalization)
  PII                150  rows get one (sometimes two) of: e-mail address (example.com/org), phone number (US
                          555-01xx, UK 020 7946 0xxx, DE, FR; several formats), 16-digit Luhn-valid card number
                          (plain, spaced, dashed), mod-97-valid IBAN (DE, GB), IPv4 from the documentation
                          ranges; duplicates of these rows repeat the PII
  CSV                  2  one ragged row (an extra field), one row with a missing field
The summary printed at the end counts all of this again from the rows written.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
import re
import unicodedata
from collections import Counter
from pathlib import Path

import polars as pl

SEED = 20260401
RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
FILES = {"helpdesk_q1": "helpdesk/tickets-2026-q1.jsonl", "helpdesk_q2": "helpdesk/tickets-2026-q2.jsonl",
         "email": "email/export.csv", "chat": "chat/transcripts.parquet", "forum": "forum/scraped.jsonl"}
BASE = {"helpdesk_q1": 670, "helpdesk_q2": 670, "email": 876, "chat": 783, "forum": 142}  # good rows per file
PLANTS = {"helpdesk_q1": (4, 3, 4, 1), "helpdesk_q2": (4, 3, 4, 1), "email": (0, 4, 3, 2),  # malformed, empty,
          "chat": (0, 3, 2, 0), "forum": (2, 2, 2, 1)}                                      # unknown label, overlong
N_DUP, N_CONFLICT, N_NEAR, N_PII, NOISE = 60, 8, 40, 150, 0.03
LABELS = ["account_access", "billing", "bug_report", "cancellation", "feature_request",
          "order_status", "product_question", "refund", "security", "technical_setup"]
WEIGHTS = [12, 13, 10, 8, 6, 14, 10, 11, 5, 11]
NEIGHBOURS = {"account_access": ["security", "technical_setup"], "billing": ["refund", "cancellation"],
              "bug_report": ["technical_setup", "feature_request"], "cancellation": ["refund", "billing"],
              "feature_request": ["product_question", "bug_report"], "order_status": ["refund", "product_question"],
              "product_question": ["feature_request", "technical_setup"],
              "refund": ["billing", "cancellation", "order_status"], "security": ["account_access", "billing"],
              "technical_setup": ["bug_report", "product_question"]}
MISSING = "<missing>"  # label key left out (JSONL), empty field (CSV), null (Parquet)
BAD_LABELS = ["misc", "billing_", "Shipping", "other", "urgent", None, MISSING, "general", "refunds", "",
              "account access", "tech", "complaint", "N/A", "spam"]
EMPTY_TEXTS = ["", " ", "   ", "\t", "\n", " \t ", "  \n  "]
MALFORMED = ["truncated", "trailing_comma", "single_quotes", "bare_text", "empty_object", "array", "number_text",
             "truncated", "single_quotes", "trailing_comma"]

SLOTS = {
    "product": ["Acme Router X2", "Acme Router X2 Pro", "Acme Mesh Node M3", "Acme SmartCam 360", "Acme Doorbell D1",
                "Acme Thermostat T4", "Acme Hub Mini", "Acme Printer P200", "Acme Earbuds E5", "Acme Watch S2",
                "Acme Powerbank 20K", "Acme Switch 8-Port"],
    "plan": ["Basic", "Plus", "Pro", "Business", "Family", "Starter", "Team", "Premium"],
    "app": ["Acme Cloud", "the Acme app", "Acme Desk", "the web portal", "Acme Sync", "Acme Analytics"],
    "device": ["iPhone 14", "iPhone 12", "Pixel 7", "Galaxy S23", "iPad Air", "MacBook Pro", "ThinkPad X1",
               "Surface Laptop", "Chromebook", "Fire TV stick"],
    "os": ["Windows 11", "Windows 10", "macOS Sonoma", "macOS 13", "iOS 17", "Android 14", "Ubuntu 22.04", "ChromeOS"],
    "browser": ["Chrome", "Firefox", "Safari", "Edge", "Brave"],
    "city": ["Lagos", "São Paulo", "Minsk", "Manila", "Bucharest", "Lima", "Hanoi", "Denver", "Toronto"],
    "carrier": ["UPS", "FedEx", "DHL", "USPS", "Royal Mail", "the courier"],
    "currency": ["EUR", "GBP", "CAD", "AUD", "INR"],
    "name": ["Jane Doe", "John Doe", "Alex Example", "Sam Sample", "Chris Tester", "Pat Placeholder",
             "Max Mustermann", "Erika Mustermann", "Zoë Fictional", "Ola Nordmann"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"],
}
GEN = {
    "order": lambda r: f"#A-{r.randint(10000, 99999)}",
    "amount": lambda r: f"{r.choice('$$$€£')}{r.choice([9, 12, 19, 29, 49, 79, 99, 129, 249])}."
                        f"{r.choice(['99', '00', '50'])}",
    "date": lambda r: f"{r.choice(SLOTS['month'])} {r.randint(1, 28)}",
    "error": lambda r: r.choice([f"E{r.randint(100, 999)}", f"0x8007{r.randint(0, 65535):04X}", "ERR_CONNECTION_RESET",
                                 f"HTTP {r.choice([400, 401, 403, 500, 502, 503])}", "TIMEOUT_ERR",
                                 f"code {r.randint(10, 99)}"]),
    "n": lambda r: str(r.randint(2, 12)), "n2": lambda r: str(r.randint(1, 4)),
    "version": lambda r: f"{r.randint(1, 5)}.{r.randint(0, 9)}.{r.randint(0, 20)}",
    "card4": lambda r: f"{r.randint(0, 9999):04d}", "product2": lambda r: r.choice(SLOTS["product"]),
}

CORE = {k: [" ".join(p.split()) for p in v.split("|")] for k, v in {
    "account_access": """I can't log in to my account, it says my password is incorrect | the password reset email
        never arrives, I've checked spam | my account is locked after too many login attempts | I'm not receiving the
        2FA code on my phone anymore | I changed phones and now the authenticator codes don't work | the login page
        just keeps reloading in {browser} | I forgot which email I signed up with, can you help me get back in | my
        username isn't recognised even though I've had an account for {n} years | the verification link in the sign-up
        email has expired | I get error {error} every time I try to sign in | I can't access the {app} dashboard since
        this morning | I need to change the email on my account but I can't log in to do it | SSO login with our
        company Google account fails with {error} | my account shows as deactivated and I don't know why | the
        "remember me" box does nothing, I have to log in every single time | how do I unlock my account after typing
        the wrong password | I was logged out of {app} and now my password doesn't work""",
    "billing": """I was charged twice for my {plan} subscription this month | my invoice from {date} shows {amount}
        but my plan is cheaper | how do I update the credit card on file | why did my bill go up to {amount} | I need
        a VAT invoice for our company | my payment of {amount} was declined but my bank says everything is fine | can
        I switch from monthly to annual billing on the {plan} plan | there's a charge of {amount} from Acme I don't
        recognise on my statement | the discount code wasn't applied to my last invoice | I was billed for {n} seats
        but we only use {n2} | please send me copies of all invoices from last year | my card ending in {card4} was
        charged after my free trial should have ended | how do I add a PO number to our invoices | I was charged
        {amount} in sales tax, is that right | the autopay failed and now my account shows an overdue balance | can I
        pay by bank transfer instead of card | I upgraded to {plan} mid-month, why was I charged the full price""",
    "bug_report": """{app} crashes every time I open the settings page on {os} | the export button does nothing in
        {browser} | I get error {error} when saving a report | the dashboard shows the wrong totals since the last
        update | the {product} reboots randomly since firmware {version} | notifications arrive twice on my {device} |
        the page freezes when I upload a file larger than {n} MB | after updating to {version}, the app won't start at
        all | the date picker always jumps back to {date} | checkout fails with {error} after I enter my card details
        | the mobile app logs me out every few minutes | search returns no results even for exact names | the
        {product} LED stays red after the latest update | charts don't render in {browser}, just a blank box | the
        sync between {app} and my phone duplicates every entry | the invoice PDF I download is corrupted | the "Save"
        button is greyed out even when every field is filled in""",
    "cancellation": """please cancel my {plan} subscription effective immediately | how do I cancel my account, I
        can't find the option in settings | I want to cancel order {order} before it ships | don't renew my plan on
        {date} | we're moving to another provider, please close our account | cancel the auto-renewal on my {plan}
        membership | I'd like to downgrade rather than cancel, is that possible | I tried to cancel online but the
        button gives error {error} | please stop charging me, I cancelled last month | cancel my trial before it turns
        into a paid plan | I want to delete my account and all my data | can I pause my subscription instead of
        cancelling | end the contract for the {n} seats we no longer need | the cancellation confirmation never came,
        is my plan actually cancelled | I'm cancelling because the price went up, please confirm | terminate the
        service for my {product}, I don't need it anymore""",
    "feature_request": """it would be great if {app} had a dark mode | please add an option to export reports to Excel
        | can you add support for {os} in the next release | I'd love to be able to schedule reports weekly | any
        plans to support hardware security keys for login | please let us set different permissions per user |
        suggestion: allow bulk editing of tickets | it would be really useful to have an offline mode in the mobile
        app | could the {product} get a firmware update to support WPA3 | we need an API endpoint to pull invoices
        automatically | please bring back the old dashboard layout, the new one is slower | add keyboard shortcuts to
        {app} please | would you consider offering a {plan} family bundle | let us pay annually in {currency} | it
        would help if the {product} app showed the battery level on the home screen | please integrate {app} with
        Slack and Teams | I wish search could filter by date""",
    "order_status": """where is my order {order} | my package was supposed to arrive on {date} but it's still not here
        | the tracking number for {order} hasn't updated in {n} days | has my {product} shipped yet | {carrier} says
        delivered but I didn't receive anything | can I change the delivery address for order {order} | my order has
        said "processing" for a week now | I only received part of my order, the {product} is missing | when will my
        {product} ship, I ordered it on {date} | is there a way to speed up shipping for {order} | I never got a
        confirmation email for my order | order {order} was marked as shipped but the tracking link is broken | what's
        the estimated delivery time to {city} | the package with my {product} is stuck in customs | can you confirm
        order {order} went through, the page crashed at checkout | {carrier} says the address is incomplete for order
        {order}""",
    "product_question": """does the {product} work with {os} | what's the difference between the {plan} and the
        Enterprise plan | is the {product} waterproof | how many users are included in the {plan} plan | does the
        {product} come with a charger | can the {product} be used in Europe with 220V | what's the warranty on the
        {product} | is there a student discount for the {plan} plan | does {app} support exporting to CSV | what are
        the dimensions of the {product} | is the {product} compatible with the {product2} | can I use {app} offline |
        what's the battery life of the {product} | do you offer an API for {app} | is there a storage limit on the
        {plan} plan | which should I buy for a small office, the {product} or the {product2}""",
    "refund": """I want a refund for order {order}, the item arrived damaged | I was charged twice, please refund the
        duplicate payment of {amount} | I returned the {product} on {date} but haven't got my money back yet | how
        long does a refund take to show up on my card | please refund my {plan} renewal, I forgot to cancel before it
        renewed | the {product} doesn't work as advertised and I'd like my money back | I got a partial refund of
        {amount} but I paid more than that | can I get a refund instead of store credit for order {order} | you said
        the refund was processed {n} days ago but nothing has arrived | I cancelled order {order} before it shipped,
        where is my refund | I'd like to return the {product}, it's within the 30 day window | the refund went to my
        old card ending {card4}, which is closed now | I was overcharged {amount} for shipping and want that refunded
        | my return label doesn't work, how do I send back the {product} for a refund | I never received order
        {order}, so I want my money back | you sent me the wrong model, I want a refund not a replacement""",
    "security": """I got an email saying my password was changed but it wasn't me | someone logged into my account
        from {city} and I've never been there | there are orders on my account that I didn't place | I received a
        phishing email pretending to be Acme asking for my card details | I think my account was hacked, my email
        address was changed | there's a charge of {amount} on my card from Acme that I didn't make | I want to report
        a vulnerability in the {app} login page | can you enforce two-factor authentication for our whole team | I got
        a login alert from an unknown {device} | someone is using my saved card, please block it | my password showed
        up in a data breach notification, what should I do | a text claiming to be from Acme asked me to confirm my
        login code | I need a list of active sessions, I think someone else has access | please lock my account right
        now, someone stole my password | I see API keys in my account that I never created | is {app} encrypted at
        rest, our security team needs to know before rollout | your site showed me another customer's name and
        address""",
    "technical_setup": """how do I connect the {product} to my wifi | I can't get the {product} to pair with my
        {device} | the setup wizard stops at step {n} with error {error} | which ports do I need to open for {app} |
        how do I install {app} on {os} | the {product} isn't detected when I plug it into my {device} | I need help
        configuring SSO for our team | how do I set up the {product} with a static IP | the installer says my {os}
        version is not supported | the {product} keeps dropping the connection right after setup | can you walk me
        through setting up email forwarding in {app} | what DNS records do I need to add for a custom domain | how do
        I migrate my settings from the old {product} to the new one | the firmware update on the {product} fails at
        {n}0% | I can't get the printer driver working on {os} | the {product} setup app doesn't find the device over
        bluetooth""",
}.items()}
CHAT = {k: [" ".join(p.split()) for p in v.split("|")] for k, v in {
    "account_access": """cant log in | locked out of my account | password reset not working | 2fa code never comes |
        login loop on {browser} | forgot my username | says wrong password but its right""",
    "billing": """why was i charged {amount} | double charged?? | need an invoice | how do i update my card | my bill
        went up | payment declined again | can i pay by bank transfer""",
    "bug_report": """app keeps crashing | getting {error} | export button broken | page froze again | {app} wont load
        | blank screen after update | save doesnt work""",
    "cancellation": """cancel my sub | how do i cancel | stop my renewal | close my account pls | cancel order {order}
        | end my trial | unsubscribe me from {plan}""",
    "feature_request": """pls add dark mode | can you add slack integration | need excel export | would love an
        offline mode | add more filters pls | any plans for a family plan | bulk edit would be nice""",
    "order_status": """where is my order | order {order} status? | tracking not updating | package is late | has it
        shipped | says delivered but nothing here | change delivery address""",
    "product_question": """does {product} work with {os} | is it waterproof | whats the warranty | how many users on
        {plan} | does it come with a charger | difference between {plan} and pro | battery life?""",
    "refund": """i want a refund | refund for {order} | where is my refund | money back pls | returned it, no refund
        yet | refund the double charge | how long do refunds take""",
    "security": """someone hacked my account | got a weird login alert | didnt make this purchase | phishing email
        from you? | password changed not by me | lock my account now | unknown device logged in""",
    "technical_setup": """how do i set up {product} | wont connect to wifi | cant pair with my phone | setup stuck at
        step {n} | install on {os}? | which ports to open | firmware update fails""",
}.items()}

CHAT_HEADS = ["", "", "", "", "hi ", "hello ", "hey, ", "um ", "hi there, ", "ok so ", "quick q: "]
CHAT_TAILS = ["", "", "", " on my {device}", " since {date}", " order {order}", " for {product}", " again", " today",
              " on {os}", " still", " help", " pls", " asap", " ??", " :(", " its urgent", " (plan: {plan})"]
OPENERS = ["", "", "", "", "", "Hi,", "Hello,", "Hi team,", "Hey there,", "Good morning,", "Hello Acme support,",
           "URGENT:", "This is ridiculous.", "Quick question:", "Seriously?!", "Not happy."]
CONTEXTS = ["I've been a customer for {n} years", "This is the second time I'm contacting you about this",
            "I already tried restarting everything", "I'm on the {plan} plan", "I'm using my {device} with {os}",
            "My order number is {order}, in case you need it", "I need this sorted out before {date}",
            "Your chatbot couldn't help me", "I attached a screenshot", "We have {n} people on our team using {app}",
            "Honestly, this is getting really frustrating", "Nothing in the help center covers this",
            "It started around {date}", "I bought the {product} last month", "My last invoice was {amount}",
            "My partner set up the account, so I'm not sure which email it's under"]
CLOSINGS = ["Thanks.", "Thanks in advance!", "Please help.", "Any help appreciated.", "Fix this ASAP.", "Cheers",
            "Regards, {name}", "Thank you, {name}", "Waiting for your reply.", "Please get back to me soon.", "Thx"]
GREETINGS = ["Hello,", "Dear Support,", "Hi team,", "Hi Acme,", "Good afternoon,", "To whom it may concern,",
             "Hi there,"]
SIGNOFFS = ["Best regards", "Kind regards", "Thanks", "Many thanks", "Sincerely", "Cheers"]
FORUM_OPEN = ["Anyone else seeing this?", "[Help]", "Long time lurker, first post.", "Has anyone figured this out?",
              "Title says it all.", "Not sure this is the right subforum, but here goes:", "PSA / question:", ""]
FORUM_CLOSE = ["Any ideas?", "Thanks in advance, folks.", "Edit: still happening.", "+1 if you have the same issue.",
               "Support hasn't answered in days.", ""]
SYNONYMS = {"order": "purchase", "charged": "billed", "cancel": "stop", "account": "profile", "please": "pls",
            "refund": "reimbursement", "app": "application", "can't": "cannot", "I'm": "I am", "doesn't": "does not",
            "wifi": "Wi-Fi", "email": "e-mail", "help": "assist", "my": "the", "the": "my", "is": "seems"}
QUESTION = re.compile(r"^(how|what|which|does|do|is|are|can|could|when|where|why|has|any)\b|"
                      r"(is that right|is that possible|actually cancelled|what should I do|where is my refund)$", re.I)
LOG_EVENTS = ["lease renewal failed", "retrying", "handshake timeout", "checksum mismatch", "link up", "link down"]


# --- composing texts --------------------------------------------------------------------------------------------

def fill(template: str, r: random.Random) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: r.choice(SLOTS[m[1]]) if m[1] in SLOTS else GEN[m[1]](r), template)


def sentence(s: str) -> str:
    s = s[0].upper() + s[1:]
    return s if s[-1] in ".?!:," else s + ("?" if QUESTION.match(s) else ".")


def typo(text: str, r: random.Random) -> str:
    """Swap two neighbouring letters in, or drop a letter from, one word."""
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if idx:
        i = r.choice(idx)
        w, j = words[i], r.randrange(1, len(words[i]) - 1)
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if r.random() < 0.5 else w[:j] + w[j + 1:]
    return " ".join(words)


def style(text: str, r: random.Random, lower: float, nopunct: float, typos: float) -> str:
    if r.random() < lower:
        text = text.lower()
    if r.random() < nopunct:
        text = text.rstrip(".!?")
    while r.random() < typos:
        text, typos = typo(text, r), typos / 3
    return text


def body(label: str, r: random.Random, n_ctx: tuple[int, int], p_other: float) -> list[str]:
    """Problem statement, context sentences, and sometimes a second topic from another label."""
    parts = [sentence(fill(r.choice(CORE[label]), r))]
    parts += [sentence(fill(c, r)) for c in r.sample(CONTEXTS, r.randint(*n_ctx))]
    if r.random() < p_other:
        other = fill(r.choice(CORE[r.choice([x for x in LABELS if x != label])]), r)
        parts.insert(r.randint(1, len(parts)), sentence(r.choice(["Also, ", "Unrelated, but ", "And "]) + other))
    return parts


def helpdesk_text(label: str, r: random.Random) -> str:
    if r.random() < 0.2:  # terse
        return style(fill(r.choice(CORE[label]), r), r, 0.4, 0.8, 0.2)
    parts = [fill(r.choice(OPENERS), r)] + body(label, r, (0, 2), 0.12)
    if r.random() < 0.35:
        parts.append(fill(r.choice(CLOSINGS), r))
    return style(" ".join(p for p in parts if p), r, 0.1, 0.1, 0.12)


def email_text(label: str, r: random.Random) -> str:
    greet, signoff, name = r.choice(GREETINGS), r.choice(SIGNOFFS), r.choice(SLOTS["name"])
    parts = body(label, r, (1, 3), 0.15)
    if r.random() < 0.5:
        parts.append(fill(r.choice(CLOSINGS[:5] + CLOSINGS[8:]), r))
    if r.random() < 0.025:  # a multi-line e-mail
        return f"{greet}\n\n{' '.join(parts)}\n\n{signoff},\n{name}"
    return style(" ".join([greet, *parts] + [f"{signoff}, {name}"] * (r.random() < 0.4)), r, 0.04, 0.05, 0.1)


def chat_text(label: str, r: random.Random) -> str:
    core = r.choice(CHAT[label]) if r.random() < 0.6 else r.choice(CORE[label]).split(",")[0]
    return style(fill(r.choice(CHAT_HEADS) + core + r.choice(CHAT_TAILS), r), r, 0.6, 0.7, 0.15)


def forum_text(label: str, r: random.Random) -> str:
    parts = [r.choice(FORUM_OPEN), *body(label, r, (0, 2), 0.12), r.choice(FORUM_CLOSE)]
    return style(" ".join(p for p in parts if p), r, 0.08, 0.1, 0.12)


MAKERS = {"helpdesk_q1": helpdesk_text, "helpdesk_q2": helpdesk_text, "email": email_text, "chat": chat_text,
          "forum": forum_text}


def norm(text: str) -> str:
    """The pipeline's normalization (tunebuild/records.py): what decides that two texts are one record."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def unique_text(source: str, label: str, r: random.Random, seen: set[str]) -> str:
    for _ in range(200):
        text = MAKERS[source](label, r)
        if norm(text) not in seen:
            seen.add(norm(text))
            return text
    raise RuntimeError(f"cannot make a new unique {source} text for {label}")


def base_rows(r: random.Random, seen: set[str]) -> dict[str, list[dict]]:
    """Good rows per file; chat comes in sessions of 1-5 utterances per customer."""
    out: dict[str, list[dict]] = {}
    for source, n in BASE.items():
        rows: list[dict] = []
        while len(rows) < n:
            label, cid = r.choices(LABELS, WEIGHTS)[0], f"C-{r.randint(1, 9999):04d}"
            for _ in range(r.choice([1, 2, 2, 3, 3, 4, 5]) if source == "chat" else 1):
                rows.append({"text": unique_text(source, label, r, seen), "label": label, "tag": "ok", "cid": cid})
        out[source] = rows[:n]
    return out


# --- PII --------------------------------------------------------------------------------------------------------

def card(r: random.Random) -> str:
    head = [4] + [r.randint(0, 9) for _ in range(14)] if r.random() < 0.6 else [5, r.randint(1, 5)] + [
        r.randint(0, 9) for _ in range(13)]
    total = sum(d if i % 2 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(head)))
    num = "".join(map(str, head + [(10 - total % 10) % 10]))  # Luhn check digit
    return r.choice(["", " ", "-"]).join(num[i:i + 4] for i in range(0, 16, 4))


def iban(r: random.Random) -> str:
    digits = "".join(str(r.randint(0, 9)) for _ in range(18))
    country, bban = r.choice([("DE", digits), ("GB", "NWBK" + digits[:14])])
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    code = f"{country}{check:02d}{bban}"
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4)) if r.random() < 0.5 else code


def phone(r: random.Random) -> str:
    x, y = r.randint(0, 99), r.randint(0, 999)
    return r.choice([f"({r.choice([212, 415, 312])}) 555-01{x:02d}", f"212-555-01{x:02d}", f"+1 415 555 01{x:02d}",
                     f"312.555.01{x:02d}", f"+44 20 7946 0{y:03d}", f"020 7946 0{y:03d}", f"+49 30 9018{y:03d}0",
                     f"+33 1 99 00 {x:02d} {y % 100:02d}"])


def email_addr(r: random.Random) -> str:
    name = r.choice(SLOTS["name"]).lower().replace("ë", "e").replace(" ", r.choice([".", "_", ""]))
    domain = r.choice(["example.com", "example.org", "mail.example.com"])
    return f"{name}{r.choice(['', str(r.randint(1, 99))])}@{domain}"


MONEY = ["billing", "refund", "cancellation", "order_status", "security"]
PII = {  # kind: (weight, labels it fits (None: all), sentence templates, value maker)
    "email": (45, None, ["You can reach me at {}.", "My email is {}", "(contact: {})", "Please reply to {} instead."],
              email_addr),
    "phone": (45, None, ["Call me on {}.", "My number is {}", "Phone: {}", "text me at {}"], phone),
    "card": (70, MONEY, ["The card was {}.", "card number {}, exp 09/28", "It was charged to {}."], card),
    "iban": (30, MONEY[:3], ["Please send the money to IBAN {}.", "My IBAN is {}"], iban),
    "ip": (25, ["security", "account_access", "technical_setup", "bug_report"],
           ["My IP address is {}, if that helps.", "The login came from {}", "router IP is {}"],
           lambda r: f"{r.choice(['192.0.2', '198.51.100', '203.0.113'])}.{r.randint(1, 254)}"),
}


# --- planting defects -------------------------------------------------------------------------------------------

def plant_noise(sources: dict[str, list[dict]], r: random.Random) -> None:
    rows = [x for v in sources.values() for x in v]
    for row in r.sample(rows, round(NOISE * len(rows))):
        row.update(label=r.choice(NEIGHBOURS[row["label"]]), noise=True)


def plant_pii(sources: dict[str, list[dict]], r: random.Random, counts: Counter, seen: set[str]) -> None:
    slots = [(s, i) for s, rows in sources.items() for i in range(len(rows))]
    for s, i in sorted(r.sample(slots, N_PII)):
        row = sources[s][i]
        kinds = [k for k, (_, labels, _, _) in PII.items() if labels is None or row["label"] in labels]
        for kind in r.choices(kinds, [PII[k][0] for k in kinds], k=1 + (r.random() < 0.1)):
            _, _, templates, make = PII[kind]
            extra, text = r.choice(templates).format(make(r)), row["text"]
            cut = text.find(". ") + 1
            mid = cut and r.random() < 0.5
            row["text"] = f"{text[:cut]} {extra.rstrip('.')}.{text[cut:]}" if mid else f"{text} {extra}"
            counts[f"pii_{kind}"] += 1
        row["pii"] = True
        seen.add(norm(row["text"]))


def perturb(text: str, r: random.Random) -> str:
    """One word or the punctuation changed; maybe also case or doubled spaces."""
    words = text.split(" ")
    hits = [i for i, w in enumerate(words) if w in SYNONYMS]
    if hits and r.random() < 0.6:
        i = r.choice(hits)
        text = " ".join(words[:i] + [SYNONYMS[words[i]]] + words[i + 1:])
    elif r.random() < 0.5:
        text = text.rstrip(".!?") + r.choice(["!", "!!", "...", " ?"])
    else:
        text = text.replace(",", "", 1).replace(".", "", 1) + "."
    if r.random() < 0.4:
        text = text.lower() if r.random() < 0.5 else text.upper()
    if r.random() < 0.4:
        text = text.replace(" ", "  ", r.randint(1, 3))
    return text


def plant_copies(sources: dict[str, list[dict]], r: random.Random, counts: Counter, seen: set[str]) -> None:
    """Exact and near duplicates of earlier good rows, from the same file or an earlier source."""
    names, sizes = list(sources), [len(v) for v in sources.values()]
    jobs = ["dup"] * N_DUP + ["near"] * N_NEAR
    r.shuffle(jobs)
    conflicts = set(r.sample([i for i, j in enumerate(jobs) if j == "dup"], N_CONFLICT))
    for n, job in enumerate(jobs):
        tgt = r.choices(names, sizes)[0]
        rows, earlier = sources[tgt], names[:names.index(tgt)]
        src = r.choice(earlier) if earlier and r.random() < 0.35 else tgt
        donor = r.choice([i for i, x in enumerate(sources[src]) if x["tag"] == "ok"])
        pos = r.randint(donor + 1, len(rows)) if src == tgt else r.randint(0, len(rows))
        row = dict(sources[src][donor], tag=job, noise=False)
        while job == "near" and norm(row["text"]) in seen:
            row["text"] = perturb(row["text"], r)
        seen.add(norm(row["text"]))
        if n in conflicts:
            row["label"], job = r.choice(NEIGHBOURS[row["label"]]), "dup_conflict"
        counts[f"{job}_{'same' if src == tgt else 'cross'}_source"] += 1
        rows.insert(pos, row)


def overlong_text(r: random.Random) -> str:
    lines = [f"Here is the full log from my {r.choice(SLOTS['product'])}, it fails every time:"]
    t = dt.datetime(2026, r.randint(1, 6), r.randint(1, 28), r.randint(0, 23), r.randint(0, 59))
    while sum(map(len, lines)) < 2300:
        t += dt.timedelta(seconds=r.randint(1, 90))
        level, module = r.choice(["INFO", "WARN", "ERROR", "DEBUG"]), r.choice(["dhcp", "wifi", "fw.update", "sync"])
        lines.append(f"{t:%Y-%m-%dT%H:%M:%S}Z [{level}] {module}: {r.choice(LOG_EVENTS)} ({GEN['error'](r)})")
    return "\n".join(lines + ["Please advise."])


def plant_defects(sources: dict[str, list[dict]], r: random.Random, counts: Counter, seen: set[str]) -> None:
    bad_labels, malformed = BAD_LABELS[:], MALFORMED[:]
    r.shuffle(bad_labels)
    bad_labels.sort(key=lambda x: x == MISSING)  # popped first, so the missing key lands in a JSONL file
    r.shuffle(malformed)
    for s, (n_mal, n_empty, n_unknown, n_long) in PLANTS.items():
        new = [{"tag": "malformed", "kind": malformed.pop()} for _ in range(n_mal)]
        new += [{"tag": "empty", "text": r.choice(EMPTY_TEXTS)} for _ in range(n_empty)]
        new += [{"tag": "unknown_label", "label": bad_labels.pop()} for _ in range(n_unknown)]
        new += [{"tag": "overlong", "text": overlong_text(r), "label": r.choice(["bug_report", "technical_setup"])}
                for _ in range(n_long)]
        new += [{"tag": "csv_ragged"}, {"tag": "csv_missing_field"}] if s == "email" else []
        for row in new:
            label = r.choices(LABELS, WEIGHTS)[0]
            row = {"text": unique_text(s, label, r, seen), "label": label, **row}
            counts[row["tag"] + (f"_{row['kind']}" if "kind" in row else "")] += 1
            sources[s].insert(r.randint(0, len(sources[s])), row)


# --- writing ----------------------------------------------------------------------------------------------------

def malformed_line(obj: dict, kind: str) -> str:
    good = json.dumps(obj, ensure_ascii=False)
    return {"truncated": good[: len(good) * 3 // 5], "trailing_comma": good[:-1] + ",}",
            "single_quotes": "{" + ", ".join(f"'{k}': '{v}'" for k, v in obj.items()) + "}",
            "bare_text": obj["text"], "empty_object": "{}", "array": json.dumps(list(obj.values()), ensure_ascii=False),
            "number_text": json.dumps({**obj, "text": sum(map(ord, obj["text"]))}, ensure_ascii=False)}[kind]


def write_jsonl(path: Path, rows: list[dict], r: random.Random, first_id: int | None, month: int = 1) -> None:
    days = sorted(r.randrange(90) for _ in rows)
    lines = []
    for i, row in enumerate(rows):
        obj = {"id": f"HD-{first_id + i:06d}"} if first_id else {}
        obj.update(text=row["text"], label=row["label"])
        if first_id:
            obj["created"] = (dt.date(2026, month, 1) + dt.timedelta(days=days[i])).isoformat()
        if row["label"] == MISSING:
            del obj["label"]
        malformed = row["tag"] == "malformed"
        lines.append(malformed_line(obj, row["kind"]) if malformed else json.dumps(obj, ensure_ascii=False))
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))


def write_csv(path: Path, rows: list[dict], r: random.Random) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")  # RFC 4180 quoting, LF line endings
    w.writerow(["message_id", "message", "category"])
    for i, row in enumerate(rows, start=1):
        fields = [f"<{i:06d}.{r.getrandbits(32):08x}@mail.example.org>", row["text"],
                  "" if row["label"] in (None, MISSING) else row["label"]]
        w.writerow(fields + ["see attached"] if row["tag"] == "csv_ragged"
                   else fields[:2] if row["tag"] == "csv_missing_field" else fields)
    path.write_bytes(buf.getvalue().encode("utf-8"))


def write_parquet(path: Path, rows: list[dict]) -> None:
    cid, cids = next(x["cid"] for x in rows if x["tag"] == "ok"), []
    for row in rows:  # a planted row joins the chat session before it
        cid = row["cid"] if row["tag"] == "ok" else cid
        cids.append(cid)
    pl.DataFrame({"utterance": [x["text"] for x in rows],
                  "intent": [None if x["label"] == MISSING else x["label"] for x in rows], "customer_id": cids},
                 schema={"utterance": pl.String, "intent": pl.String, "customer_id": pl.String}
                 ).write_parquet(path, compression="zstd", statistics=True)


def summary(sources: dict[str, list[dict]], counts: Counter) -> None:
    print(f"{'file':42} {'units':>6} {'bytes':>8}  sha256")
    for s, rel in FILES.items():
        data = (RAW / rel).read_bytes()
        print(f"data/raw/{rel:33} {len(sources[s]):6} {len(data):8}  {hashlib.sha256(data).hexdigest()[:16]}")
    groups = {"helpdesk": ["helpdesk_q1", "helpdesk_q2"], "email": ["email"], "chat": ["chat"], "forum": ["forum"]}
    clean = {g: Counter(x["label"] for s in ss for x in sources[s] if x["tag"] in ("ok", "dup", "near"))
             for g, ss in groups.items()}
    clean["total"] = sum(clean.values(), Counter())
    print("\nclean rows (good rows + planted duplicates) by label\n" + f"{'':18}" + "".join(f"{g:>9}" for g in clean))
    for lab in LABELS + ["total"]:
        print(f"{lab:18}" + "".join(f"{c.total() if lab == 'total' else c[lab]:9}" for c in clean.values()))
    rows = [x for v in sources.values() for x in v]
    counts["label_noise"] = sum(bool(x.get("noise")) for x in rows)
    counts["pii_rows (planted + copies)"] = sum(bool(x.get("pii")) for x in rows)
    print("\ndefects planted")
    for k in sorted(counts):
        print(f"  {k:36} {counts[k]:5}")
    print(f"  total units {len(rows)}")


def main() -> None:
    r, seen, counts = random.Random(SEED), set(), Counter()
    sources = base_rows(r, seen)
    plant_noise(sources, r)
    plant_pii(sources, r, counts, seen)
    plant_copies(sources, r, counts, seen)
    plant_defects(sources, r, counts, seen)
    for rel in FILES.values():
        (RAW / rel).parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(RAW / FILES["helpdesk_q1"], sources["helpdesk_q1"], r, 1, month=1)
    write_jsonl(RAW / FILES["helpdesk_q2"], sources["helpdesk_q2"], r, len(sources["helpdesk_q1"]) + 1, month=4)
    write_csv(RAW / FILES["email"], sources["email"], r)
    write_parquet(RAW / FILES["chat"], sources["chat"])
    write_jsonl(RAW / FILES["forum"], sources["forum"], r, None)
    summary(sources, counts)


if __name__ == "__main__":
    main()
