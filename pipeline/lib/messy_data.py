"""A messier data set for identity resolution, with the true person and the mess category behind every record.

    python -m pipeline.lib.messy_data --persons 3000 --out data/messy [--seed 7] [--mix balanced|households|spellings]

Writes the three raw sources like pipeline.lib.demo_data (same shapes, `shared/contracts/sources.md`) plus
`truth.csv` (source, record_id, person_id, category). Each person belongs to one category of real-world mess:

  merge (records of one person that must end up together)
    phone_spellings      records linked only by a phone spelled as people type it: +62 812-…, (0812) …, +62 (0)812…,
                         62812…, 0062 812…, dots, full-width digits, NBSP or tab
    email_spellings      records linked only by an email: upper case, spaces, mailto: (with a query), "Name <addr>",
                         "addr (comment)", a trailing dot
    email_changed        a later email with the phone kept;  phone_changed: a later phone with the email kept
    second_account_typo  a second webshop account with a typo in the name
    accounts_one_email   several webshop accounts on one email
    guest_checkout       no account, guest orders only;  survey_order_ref: surveys carrying only an order reference
    ticket_email_only    helpdesk tickets carrying only an email
  keep apart (different persons that share or nearly share a value)
    household            a landline or family mobile shared by relatives with different first names
    courier              a courier's or shop's phone typed on many customers' orders
    placeholder          junk contacts (test@…, noemail@…, 08000000000, 081234567890) typed by unrelated persons
    transposed_phone     two persons whose phones differ by two swapped digits
    same_name            two persons with the same first and last name
    recycled_phone       a number given up by one person and used by another a year later
    whatsapp_household   relatives writing to the helpdesk from one WhatsApp number (one requester id)
  plain                  everybody else, with ordinary spelling noise

Category shares and spelling mixes are drawn per seed around the `mix`'s means, so two seeds are two differently made
data sets. A fixture generator for thousands of persons: persons are built one by one, for readability.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.lib.demo_data import CITIES, FIRST_NAMES, LAST_NAMES, write_daily, write_sqlite

MERGE_CATEGORIES = (
    "phone_spellings",
    "email_spellings",
    "email_changed",
    "phone_changed",
    "second_account_typo",
    "accounts_one_email",
    "guest_checkout",
    "survey_order_ref",
    "ticket_email_only",
)
APART_CATEGORIES = (
    "household",
    "courier",
    "placeholder",
    "transposed_phone",
    "same_name",
    "recycled_phone",
    "whatsapp_household",
)
MIXES = {
    # share of persons per category (groups count each member); the rest are plain
    "balanced": {**{c: 0.04 for c in MERGE_CATEGORIES}, **{c: 0.035 for c in APART_CATEGORIES}},
    "households": {
        **{c: 0.025 for c in MERGE_CATEGORIES},
        "household": 0.12,
        "whatsapp_household": 0.08,
        "courier": 0.05,
        "placeholder": 0.04,
        "transposed_phone": 0.03,
        "same_name": 0.05,
        "recycled_phone": 0.05,
    },
    "spellings": {**{c: 0.07 for c in MERGE_CATEGORIES}, **{c: 0.02 for c in APART_CATEGORIES}},
}
# Wider name pools than the demo's, so that two unrelated persons share a full name about as rarely as in a real
# customer base (the same_name category plants such pairs on purpose).
EXTRA_FIRST = (
    "Ahmad Bagus Cahya Dodi Evi Farah Galih Hana Iwan Joni Kiki Lina Mira Nanda Oki Puji Ratih Surya Tono Umi "
    "Vina Wawan Yanti Zaki Aulia Bima Cinta Dani Eka Fajri Gita Hesti Ika Jaka Kurnia Lukman Mega Nisa Oscar "
    "Pandu Rahma Sinta Tari Udin Vera Wulandari Yosef Zahra Asep Beni Cici Dimas Erna Fauzi Gading Hilda"
).split()
EXTRA_LAST = (
    "Wirawan Hartono Sudirman Prasetyo Suryadi Hermawan Anggraini Handoko Irawan Junaedi Kartika Mahendra "
    "Nainggolan Pane Rangkuti Sinaga Tambunan Wicaksono Yulianto Zulkarnain Ramadhan Maulana Febrianti Puspita "
    "Sitompul Manurung Damanik Ginting Tarigan Surbakti Pohan Daulay Batubara Marpaung Panjaitan Situmorang"
).split()
DOMAINS = ["gmail.com", "yahoo.co.id", "yahoo.com", "outlook.com", "ymail.com", "hotmail.com", "icloud.com"]
JUNK_EMAILS = [
    "test@test.com",
    "noemail@gmail.com",
    "tidakada@gmail.com",
    "a@a.com",
    "-@gmail.com",
    "none@yahoo.com",
    "na@gmail.com",
]
JUNK_PHONES = ["08000000000", "081234567890", "0000", "-", "08111111111", "0812-3456-789"]
START, END = date(2024, 1, 1), date(2026, 11, 22)


@dataclass(frozen=True)
class MessyConfig:
    persons: int = 3000
    seed: int = 7
    mix: str = "balanced"


class _Builder:
    """Accumulates the rows of the four source tables and the truth, one person at a time."""

    def __init__(self, cfg: MessyConfig):
        self.rng = np.random.default_rng(cfg.seed)
        rng = self.rng
        # Spelling habits of this data set: how often each phone/email spelling occurs.
        self.phone_style_p = rng.dirichlet(np.ones(12) * 2)
        self.email_style_p = rng.dirichlet(np.ones(10) * 2)
        self.customers, self.orders, self.tickets, self.surveys, self.truth = [], [], [], [], []
        self.used_phones: set[str] = set()
        self.used_emails: set[str] = set()
        self.person_no = 0

    # ----------------------------------------------------------------------------------------------- values
    def pick(self, values):
        return values[int(self.rng.integers(0, len(values)))]

    def day(self, lo: int = 0, hi: int | None = None) -> datetime:
        span = (END - START).days
        hi = span if hi is None else min(hi, span)
        offset = int(self.rng.integers(lo, max(hi, lo + 1)))
        return datetime.combine(START, datetime.min.time()) + timedelta(
            days=offset, seconds=int(self.rng.integers(0, 86400))
        )

    def new_phone(self, landline: bool = False) -> str:
        while True:
            if landline:
                number = "021" + "".join(str(d) for d in self.rng.integers(0, 10, 8))
            else:
                number = self.pick(["0811", "0812", "0813", "0821", "0852", "0857", "0878", "0896"]) + "".join(
                    str(d) for d in self.rng.integers(0, 10, int(self.rng.integers(7, 9)))
                )
            digits = number[1:]
            if number not in self.used_phones and len(set(digits)) > 3 and "1234567" not in digits:
                self.used_phones.add(number)
                return number

    def new_email(self, first: str, last: str) -> str:
        while True:  # two people never hold one address by chance (placeholders are planted on purpose)
            n = int(self.rng.integers(1, 9999))
            local = self.pick([f"{first}.{last}{n}", f"{first}{n}", f"{first}_{last}{n % 100}", f"{last}.{first}{n}"])
            email = f"{local.lower()}@{self.pick(DOMAINS)}"
            if email not in self.used_emails:
                self.used_emails.add(email)
                return email

    def spell_phone(self, number: str, plain: bool = False) -> str:
        national = number[1:]
        style = 0 if plain else int(self.rng.choice(12, p=self.phone_style_p))
        groups = [number[:4], number[4:8], number[8:]]
        return [
            number,
            f"+62 {national[:3]}-{national[3:7]}-{national[7:]}",
            f"{groups[0]} {groups[1]} {groups[2]}",
            f"62{national}",
            f"{groups[0]}.{groups[1]}.{groups[2]}",
            f"({number[:4]}) {number[4:]}",
            f"+62 (0){national[:3]} {national[3:]}",
            number.translate(str.maketrans("0123456789", "０１２３４５６７８９")),  # full-width digits
            f"{groups[0]}\u00a0{groups[1]}\u00a0{groups[2]}",
            f"{groups[0]}\t{groups[1]}{groups[2]}",
            f"+62-{national}",
            f"0062 {national[:3]} {national[3:]}",  # 00, the international prefix of most of the world
        ][style]

    def spell_email(self, email: str, first: str, last: str, plain: bool = False) -> str:
        style = 0 if plain else int(self.rng.choice(10, p=self.email_style_p))
        return [
            email,
            email.upper(),
            f"  {email} ",
            f"mailto:{email}",
            f"{first.title()} {last.title()} <{email}>",
            f"{email}.",
            email[0].upper() + email[1:] + "\u00a0",
            f"\t{email.upper()}",
            f"{email} ({first.title()})",
            f"mailto:{email}?subject=Pesanan",
        ][style]

    # ---------------------------------------------------------------------------------------------- records
    def person(self, category: str, first: str | None = None, last: str | None = None, city: str | None = None) -> dict:
        self.person_no += 1
        first = first or self.pick(FIRST_NAMES + EXTRA_FIRST)
        last = last or self.pick(LAST_NAMES + EXTRA_LAST)
        return {
            "id": f"P{self.person_no:06d}",
            "category": category,
            "first": first,
            "last": last,
            "city": city or self.pick(CITIES)[0],
            "email": self.new_email(first, last),
            "phone": self.new_phone(),
            "since": int(self.rng.integers(0, 700)),
        }

    def _truth(self, source: str, record_id: str, p: dict) -> None:
        self.truth.append({"source": source, "record_id": record_id, "person_id": p["id"], "category": p["category"]})

    def account(
        self,
        p: dict,
        email: str | None = None,
        phone: str | None = None,
        first: str | None = None,
        last: str | None = None,
        when: datetime | None = None,
    ) -> str:
        cid = f"W{len(self.customers) + 1:06d}"
        when = when or self.day(p["since"], p["since"] + 60)
        self.customers.append(
            {
                "customer_id": cid,
                "email": email,
                "phone": phone,
                "first_name": first or p["first"],
                "last_name": last if last is not None else p["last"],
                "city": p["city"],
                "province": dict(CITIES)[p["city"]],
                "customer_type": "end_customer",
                "marketing_opt_in": bool(self.rng.random() < 0.6),
                "created_at": when,
                "updated_at": when,
            }
        )
        self._truth("webshop_customer", cid, p)
        return cid

    def order(
        self,
        p: dict,
        customer_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        when: datetime | None = None,
    ) -> str:
        oid = f"O{len(self.orders) + 1:07d}"
        when = when or self.day(p["since"])
        amount = float(round(self.rng.lognormal(12, 0.7), -2))
        self.orders.append(
            {
                "order_id": oid,
                "customer_id": customer_id,
                "guest_email": email,
                "guest_phone": phone,
                "ordered_at": when,
                "amount": amount,
            }
        )
        self._truth("webshop_order", oid, p)
        return oid

    def ticket(
        self,
        p: dict,
        email: str | None = None,
        phone: str | None = None,
        name: str | None = None,
        order_ref: str | None = None,
        requester: str | None = None,
        when: datetime | None = None,
    ) -> str:
        tid = f"T{len(self.tickets) + 1:07d}"
        if requester is None:  # helpdesks keep one requester per contact address, as they received it
            requester = "H-em-" + hashlib.md5(f"{email or tid}".strip().lower().encode()).hexdigest()[:10]
        self.tickets.append(
            {
                "id": tid,
                "requester_id": requester,
                "requester_email": email,
                "requester_phone": phone,
                "requester_name": name,
                "channel": "whatsapp" if phone else "email",
                "order_ref": order_ref,
                "created_at": when or self.day(p["since"]),
            }
        )
        self._truth("helpdesk_ticket", tid, p)
        return tid

    def survey(
        self,
        p: dict,
        email: str | None = None,
        phone: str | None = None,
        order_ref: str | None = None,
        when: datetime | None = None,
    ) -> str:
        sid = f"S{len(self.surveys) + 1:07d}"
        self.surveys.append(
            {
                "response_id": sid,
                "email": email,
                "phone": phone,
                "order_ref": order_ref,
                "submitted_at": when or self.day(p["since"]),
            }
        )
        self._truth("survey_response", sid, p)
        return sid

    def requester_of(self, phone: str) -> str:
        """WhatsApp helpdesks key a requester by the phone number."""
        return "H-wa-" + hashlib.md5(phone.encode()).hexdigest()[:10]

    def name_variant(self, p: dict) -> str:
        """How a person signs a ticket: full name, first name only, lower case, with an honorific."""
        return self.pick(
            [
                f"{p['first']} {p['last']}",
                p["first"],
                f"{p['first']} {p['last']}".lower(),
                f"Bu {p['first']}" if self.rng.random() < 0.5 else f"Pak {p['first']}",
            ]
        )

    # -------------------------------------------------------------------------------------------- persons
    def plain(self, p: dict, phone_spelled: bool = True) -> str | None:
        """A person's ordinary records with ordinary noise; returns the account id (None for guests)."""
        rng = self.rng
        sp = (lambda: self.spell_phone(p["phone"])) if phone_spelled else (lambda: p["phone"])
        # Every record carries a contact that another record of the person carries too: no record is unlinkable.
        cid = None
        if rng.random() < 0.75:
            cid = self.account(p, self.spell_email(p["email"], p["first"], p["last"]), sp())
        phone_known = cid is not None
        for _ in range(int(rng.integers(1, 6))):
            if cid and rng.random() < 0.85:
                self.order(p, cid)
            else:
                with_phone = rng.random() < 0.6
                self.order(p, None, self.spell_email(p["email"], p["first"], p["last"]), sp() if with_phone else None)
                phone_known |= with_phone
        for _ in range(int(rng.poisson(0.8))):
            if rng.random() < 0.5 or not phone_known:
                self.ticket(p, email=self.spell_email(p["email"], p["first"], p["last"]), name=self.name_variant(p))
            else:
                self.ticket(p, phone=sp(), name=self.name_variant(p), requester=self.requester_of(p["phone"]))
        for _ in range(int(rng.poisson(0.5))):
            self.survey(p, email=self.spell_email(p["email"], p["first"], p["last"]))
        return cid

    def build(self, category: str) -> int:
        """Add one unit of `category` (a person, or a group for the keep-apart kinds); returns persons added."""
        rng, pick = self.rng, self.pick
        if category == "plain":
            self.plain(self.person("plain"))
            return 1
        if category == "phone_spellings":
            p = self.person(category)
            self.account(p, p["email"], p["phone"])
            for _ in range(int(rng.integers(2, 5))):
                kind = rng.integers(0, 3)
                spelled = self.spell_phone(p["phone"])
                if kind == 0:
                    self.order(p, None, None, spelled)
                elif kind == 1:
                    self.ticket(p, phone=spelled, name=self.name_variant(p))
                else:
                    self.survey(p, phone=spelled)
            return 1
        if category == "email_spellings":
            p = self.person(category)
            self.account(p, p["email"], p["phone"])
            for _ in range(int(rng.integers(2, 5))):
                kind = rng.integers(0, 3)
                spelled = self.spell_email(p["email"], p["first"], p["last"])
                if kind == 0:
                    self.order(p, None, spelled, None)
                elif kind == 1:
                    self.ticket(p, email=spelled, name=self.name_variant(p))
                else:
                    self.survey(p, email=spelled)
            return 1
        if category in ("email_changed", "phone_changed"):
            p = self.person(category)
            cid = self.account(p, p["email"], self.spell_phone(p["phone"]))
            for _ in range(int(rng.integers(1, 3))):
                self.order(p, cid)
            later = p["since"] + 200
            if category == "email_changed":
                email2 = self.new_email(p["first"], p["last"])
                for _ in range(int(rng.integers(1, 4))):
                    self.order(
                        p,
                        None,
                        self.spell_email(email2, p["first"], p["last"]),
                        self.spell_phone(p["phone"]),
                        when=self.day(later),
                    )
                self.ticket(
                    p,
                    email=self.spell_email(email2, p["first"], p["last"]),
                    name=self.name_variant(p),
                    when=self.day(later),
                )
            else:
                phone2 = self.new_phone()
                for _ in range(int(rng.integers(1, 4))):
                    self.order(
                        p,
                        None,
                        self.spell_email(p["email"], p["first"], p["last"]),
                        self.spell_phone(phone2),
                        when=self.day(later),
                    )
                self.ticket(
                    p,
                    phone=self.spell_phone(phone2),
                    name=self.name_variant(p),
                    requester=self.requester_of(phone2),
                    when=self.day(later),
                )
            return 1
        if category == "second_account_typo":
            p = self.person(category)
            cid = self.account(p, p["email"], self.spell_phone(p["phone"]))
            typo = _typo(p["first"], rng) if rng.random() < 0.6 else p["first"]
            last = p["last"] if typo != p["first"] else _typo(p["last"], rng)
            cid2 = self.account(
                p,
                self.spell_email(p["email"], p["first"], p["last"]),
                self.spell_phone(p["phone"]) if rng.random() < 0.5 else None,
                first=typo,
                last=last,
                when=self.day(p["since"] + 30),
            )
            for c in (cid, cid2):
                for _ in range(int(rng.integers(1, 3))):
                    self.order(p, c)
            return 1
        if category == "accounts_one_email":
            p = self.person(category)
            for k in range(int(rng.integers(2, 5))):
                phone = self.pick([p["phone"], None, self.new_phone()])
                cid = self.account(
                    p,
                    self.spell_email(p["email"], p["first"], p["last"]),
                    self.spell_phone(phone) if phone else None,
                    when=self.day(p["since"] + 40 * k),
                )
                self.order(p, cid)
            return 1
        if category == "guest_checkout":
            p = self.person(category)
            self.order(p, None, self.spell_email(p["email"], p["first"], p["last"]), self.spell_phone(p["phone"]))
            for _ in range(int(rng.integers(1, 5))):
                roll = rng.random()
                self.order(
                    p,
                    None,
                    self.spell_email(p["email"], p["first"], p["last"]) if roll < 0.7 else None,
                    self.spell_phone(p["phone"]) if roll > 0.4 else None,
                )
            return 1
        if category == "survey_order_ref":
            p = self.person(category)
            cid = self.plain(p) or self.account(p, p["email"], p["phone"])
            orders = [self.order(p, cid) for _ in range(int(rng.integers(1, 3)))]
            for _ in range(int(rng.integers(1, 4))):
                self.survey(p, order_ref=pick(orders))
            return 1
        if category == "ticket_email_only":
            p = self.person(category)
            self.plain(p)
            self.account(p, p["email"], None)
            for _ in range(int(rng.integers(1, 4))):
                self.ticket(
                    p,
                    email=self.spell_email(p["email"], p["first"], p["last"]),
                    name=self.name_variant(p) if rng.random() < 0.7 else None,
                )
            return 1
        if category in ("household", "whatsapp_household"):
            size = int(rng.integers(2, 4))
            last, city = pick(LAST_NAMES), pick(CITIES)[0]
            firsts = list(rng.choice(FIRST_NAMES, size, replace=False))
            shared = self.new_phone(landline=category == "household" and rng.random() < 0.5)
            members = [self.person(category, first=f, last=last, city=city) for f in firsts]
            for m in members:
                cid = self.plain(m) if category == "whatsapp_household" else None
                if category == "household":
                    cid = self.account(m, self.spell_email(m["email"], m["first"], m["last"]), self.spell_phone(shared))
                    for _ in range(int(rng.integers(1, 4))):
                        self.order(m, cid)
                    if rng.random() < 0.5:
                        self.order(
                            m, None, self.spell_email(m["email"], m["first"], m["last"]), self.spell_phone(shared)
                        )
                    if rng.random() < 0.5:
                        self.ticket(
                            m,
                            phone=self.spell_phone(shared),
                            name=f"{m['first']} {m['last']}",
                            requester=self.requester_of(shared),
                        )
                else:
                    cid = cid or self.account(m, m["email"], m["phone"])
                    own = self.order(m, cid)
                    for _ in range(int(rng.integers(1, 3))):
                        self.ticket(
                            m,
                            phone=self.spell_phone(shared) if rng.random() < 0.7 else None,
                            name=self.name_variant(m),
                            order_ref=own if rng.random() < 0.7 else None,
                            requester=self.requester_of(shared),
                        )
            return size
        if category == "courier":
            courier = self.new_phone()
            size = int(rng.integers(4, 15))
            for _ in range(size):
                p = self.person(category)
                cid = self.plain(p)
                for _ in range(int(rng.integers(1, 3))):
                    if cid and rng.random() < 0.3:
                        self.order(p, cid, None, self.spell_phone(courier))
                    else:
                        self.order(
                            p, None, self.spell_email(p["email"], p["first"], p["last"]), self.spell_phone(courier)
                        )
            return size
        if category == "placeholder":
            size = int(rng.integers(3, 8))
            junk_email, junk_phone = pick(JUNK_EMAILS), pick(JUNK_PHONES)
            for _ in range(size):
                p = self.person(category)
                cid = self.plain(p)
                self.order(p, None, self.spell_email(p["email"], p["first"], p["last"]), junk_phone)
                self.survey(p, email=junk_email, phone=self.spell_phone(p["phone"]))
                if cid:
                    self.account(p, junk_email, self.spell_phone(p["phone"]))
            return size
        if category == "transposed_phone":
            a, b = self.person(category), self.person(category)
            digits = list(a["phone"])
            k = int(rng.integers(4, len(digits) - 1))
            digits[k], digits[k + 1] = digits[k + 1], digits[k]
            if digits[k] == digits[k + 1]:
                digits[k + 1] = str((int(digits[k + 1]) + 1) % 10)
            b["phone"] = "".join(digits)
            self.plain(a)
            self.plain(b)
            return 2
        if category == "same_name":
            a = self.person(category)
            b = self.person(category, first=a["first"], last=a["last"], city=a["city"] if rng.random() < 0.5 else None)
            self.plain(a)
            self.plain(b)
            return 2
        if category == "recycled_phone":
            a = self.person(category)
            a["since"] = int(rng.integers(0, 200))
            old = a["phone"]
            a["phone"] = self.new_phone()
            self.account(a, a["email"], self.spell_phone(a["phone"]), when=self.day(a["since"], a["since"] + 30))
            for _ in range(int(rng.integers(1, 4))):
                when = self.day(a["since"], a["since"] + 120)
                if rng.random() < 0.5:
                    self.order(
                        a, None, self.spell_email(a["email"], a["first"], a["last"]), self.spell_phone(old), when=when
                    )
                else:
                    self.ticket(
                        a,
                        phone=self.spell_phone(old),
                        name=self.name_variant(a),
                        requester=self.requester_of(old),
                        when=when,
                    )
            b = self.person(category)
            b["since"] = a["since"] + 500
            b["phone"] = old
            cid = self.account(b, b["email"], self.spell_phone(old), when=self.day(b["since"], b["since"] + 30))
            for _ in range(int(rng.integers(1, 4))):
                self.order(b, cid, when=self.day(b["since"]))
            self.ticket(
                b,
                phone=self.spell_phone(old),
                name=self.name_variant(b),
                requester=self.requester_of(old),
                when=self.day(b["since"]),
            )
            return 2
        raise ValueError(f"unknown category {category!r}")


def _typo(name: str, rng: np.random.Generator) -> str:
    """One keyboard slip: a swapped, doubled, dropped or replaced letter."""
    k = int(rng.integers(1, max(len(name) - 1, 2)))
    kind = int(rng.integers(0, 4))
    if kind == 0 and k + 1 < len(name):
        return name[:k] + name[k + 1] + name[k] + name[k + 2 :]
    if kind == 1:
        return name[:k] + name[k] + name[k:]
    if kind == 2 and len(name) > 3:
        return name[:k] + name[k + 1 :]
    return name[:k] + ("i" if name[k] != "i" else "y") + name[k + 1 :]


def build(cfg: MessyConfig) -> dict[str, pl.DataFrame]:
    """The source tables (customers, orders, order_items, tickets, surveys) and `truth`, in memory."""
    if cfg.mix not in MIXES:
        raise ValueError(f"unknown mix {cfg.mix!r}; known: {sorted(MIXES)}")
    builder = _Builder(cfg)
    rng = builder.rng
    shares = {c: s * rng.uniform(0.5, 1.5) for c, s in MIXES[cfg.mix].items()}
    plan = [c for c, s in shares.items() for _ in range(int(round(s * cfg.persons)))]
    plan += ["plain"] * max(cfg.persons - len(plan), 0)
    rng.shuffle(plan)
    persons = 0
    for category in plan:
        if persons >= cfg.persons:
            break
        persons += builder.build(category)
    return _frames(builder)


def _iso(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%S+07:00")


def _frames(b: _Builder) -> dict[str, pl.DataFrame]:
    customers = pl.DataFrame(b.customers).with_columns(created_at=_iso("created_at"), updated_at=_iso("updated_at"))
    orders = pl.DataFrame(b.orders).select(
        "order_id",
        "customer_id",
        "guest_email",
        "guest_phone",
        ordered_at=_iso("ordered_at"),
        status=pl.lit("completed"),
        channel=pl.lit("web"),
        currency=pl.lit("IDR"),
        gross_amount="amount",
        discount_amount=pl.lit(0.0),
        shipping_amount=pl.lit(0.0),
        net_amount="amount",
        promo_code=pl.lit(None, pl.Utf8),
        referral_code=pl.lit(None, pl.Utf8),
        updated_at=_iso("ordered_at"),
    )
    items = orders.select(
        "order_id",
        line_no=pl.lit(1),
        sku=pl.lit("SKU-00001"),
        category=pl.lit("fashion"),
        quantity=pl.lit(1),
        unit_price="gross_amount",
        unit_cost=pl.col("gross_amount") * 0.6,
    )
    tickets = pl.DataFrame(
        b.tickets,
        schema_overrides={
            "requester_email": pl.Utf8,
            "requester_phone": pl.Utf8,
            "requester_name": pl.Utf8,
            "order_ref": pl.Utf8,
        },
    )
    tickets = tickets.select(
        "id",
        requester=pl.struct(id="requester_id", email="requester_email", phone="requester_phone", name="requester_name"),
        channel="channel",
        subject=pl.lit("Pertanyaan"),
        status=pl.lit("solved"),
        priority=pl.lit("normal"),
        order_ref="order_ref",
        created_at=_iso("created_at"),
        updated_at=_iso("created_at"),
        solved_at=_iso("created_at"),
        satisfaction=pl.lit(None, pl.Utf8),
        tags=pl.lit(["messy"]),
        _day=pl.col("created_at").dt.date(),
        _order=pl.col("id"),
    )
    surveys = pl.DataFrame(b.surveys, schema_overrides={"email": pl.Utf8, "phone": pl.Utf8, "order_ref": pl.Utf8})
    surveys = surveys.select(
        "response_id",
        submitted_at=_iso("submitted_at"),
        survey=pl.lit("nps"),
        score=pl.lit("8"),
        comment=pl.lit(""),
        email="email",
        phone="phone",
        order_ref="order_ref",
        consent=pl.lit("true"),
        _day=pl.col("submitted_at").dt.date(),
        _order=pl.col("response_id"),
    )
    return {
        "customers": customers,
        "orders": orders,
        "order_items": items,
        "tickets": tickets,
        "surveys": surveys,
        "truth": pl.DataFrame(b.truth),
    }


def staged(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The sources as the staging models shape them (ticket requester flattened), for identity without dbt."""
    tickets = frames["tickets"].select(
        ticket_id="id",
        requester_id=pl.col("requester").struct.field("id"),
        requester_email=pl.col("requester").struct.field("email"),
        requester_phone=pl.col("requester").struct.field("phone"),
        requester_name=pl.col("requester").struct.field("name"),
        order_ref="order_ref",
        created_at="created_at",
        updated_at="updated_at",
    )
    return {
        "stg_webshop__customers": frames["customers"],
        "stg_webshop__orders": frames["orders"],
        "stg_helpdesk__tickets": tickets,
        "stg_survey__responses": frames["surveys"],
    }


def pairwise_scores(assigned: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Pairwise precision and recall overall (category 'all') and per category.

    `assigned`: source, record_id, customer_id (null = kept out of profiles). Per category, recall counts the true
    pairs of that category's persons and precision the predicted pairs touching one of its records. Records absent
    from either side, or kept out, are ignored.
    """
    import duckdb

    with duckdb.connect() as con:
        con.register("assigned", assigned.select("source", "record_id", "customer_id").to_arrow())
        con.register("truth", truth.select("source", "record_id", "person_id", "category").to_arrow())
        return con.execute("""
            with m as (
                select a.customer_id, t.person_id, t.category
                from assigned as a join truth as t using (source, record_id)
                where a.customer_id is not null
            ),
            clusters as (select customer_id, count(*) as n from m group by all),
            cluster_cat as (select customer_id, category, count(*) as k from m group by all),
            both_ as (select customer_id, person_id, category, count(*) as k from m group by all),
            persons as (select person_id, category, count(*) as k from m group by all),
            per_cat as (
                select c.category,
                    sum(n * (n - 1) / 2 - (n - k) * (n - k - 1) / 2) as predicted
                from cluster_cat as c join clusters using (customer_id) group by all
            ),
            agreed as (select category, sum(k * (k - 1) / 2) as agreed from both_ group by all),
            actual as (select category, sum(k * (k - 1) / 2) as actual from persons group by all),
            totals as (
                select 'all' as category, (select sum(n * (n - 1) / 2) from clusters) as predicted,
                       (select sum(agreed) from agreed) as agreed, (select sum(actual) from actual) as actual
            ),
            rows_ as (
                select category, predicted, agreed, actual
                from per_cat join agreed using (category) join actual using (category)
                union all select category, predicted, agreed, actual from totals
            )
            select category, agreed / nullif(predicted, 0) as precision, agreed / nullif(actual, 0) as recall,
                   predicted::bigint as predicted_pairs, actual::bigint as true_pairs
            from rows_ order by category = 'all' desc, category
        """).pl()


def generate(cfg: MessyConfig, out: Path) -> dict[str, int]:
    """Write the sources and truth.csv into `out` (the layout of pipeline.lib.demo_data); returns record counts."""
    frames = build(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_sqlite(out / "webshop.sqlite", {name: frames[name] for name in ("customers", "orders", "order_items")})
    write_daily(frames["tickets"], "_day", out / "helpdesk", "tickets", lambda _day: "jsonl")
    write_daily(frames["surveys"], "_day", out / "survey", "responses", lambda _day: "csv")
    frames["truth"].write_csv(out / "truth.csv")
    return {name: frame.height for name, frame in frames.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=MessyConfig.persons)
    parser.add_argument("--seed", type=int, default=MessyConfig.seed)
    parser.add_argument("--mix", choices=sorted(MIXES), default=MessyConfig.mix)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    counts = generate(MessyConfig(persons=args.persons, seed=args.seed, mix=args.mix), args.out)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
