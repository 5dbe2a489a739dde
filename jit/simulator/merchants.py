"""Where the simulated cards are used: merchants by channel, with realistic amounts per MCC."""

from __future__ import annotations

import random
from dataclasses import dataclass

CARD_PRESENT, ECOMMERCE, ATM = "CARD_PRESENT", "ECOMMERCE", "ATM"


@dataclass(frozen=True, slots=True)
class Merchant:
    """A card acceptor as Marqeta describes it (`card_acceptor`, MARQETA.md §2.2)."""

    mid: str
    mcc: str
    name: str
    city: str
    state: str
    postal_code: str
    country_code: str  # alpha-3, as Marqeta sends it [seen]
    channel: str  # CARD_PRESENT | ECOMMERCE | ATM
    low_minor: int  # what a purchase here usually costs, in minor units
    high_minor: int
    incremental: bool = False  # hotels, car rentals, restaurants: amounts may grow
    tips: bool = False  # restaurants, taxis, fuel: the clearing may exceed the auth
    currency_numeric: str = ""  # the merchant's own currency when abroad (ISO 4217 numeric)

    @property
    def is_foreign(self) -> bool:
        return self.country_code != "USA"

    def card_acceptor(self) -> dict[str, str]:
        return {
            "mid": self.mid,
            "mcc": self.mcc,
            "name": self.name,
            "city": self.city,
            "state": self.state,
            "postal_code": self.postal_code,
            "country_code": self.country_code,
        }


def _m(
    mid: str,
    mcc: str,
    name: str,
    place: tuple[str, str, str, str],
    channel: str,
    dollars: tuple[int, int],
    **flags: object,
) -> Merchant:
    city, state, postal_code, country = place
    return Merchant(
        mid=mid,
        mcc=mcc,
        name=name,
        city=city,
        state=state,
        postal_code=postal_code,
        country_code=country,
        channel=channel,
        low_minor=dollars[0] * 100,
        high_minor=dollars[1] * 100,
        **flags,
    )


OAKLAND = ("OAKLAND", "CA", "94607", "USA")
SEATTLE = ("SEATTLE", "WA", "98101", "USA")
NEW_YORK = ("NEW YORK", "NY", "10001", "USA")
CHICAGO = ("CHICAGO", "IL", "60601", "USA")
LONDON = ("LONDON", "GBR", "EC1A 1BB", "GBR")  # state holds the country abroad [seen]
WARSAW = ("WARSZAWA", "POL", "00-001", "POL")
PARIS = ("PARIS", "FRA", "75001", "FRA")
TOKYO = ("TOKYO", "JPN", "100-0001", "JPN")

MERCHANTS: tuple[Merchant, ...] = (
    _m("000000000011111", "5812", "BLUE BOTTLE COFFEE", OAKLAND, CARD_PRESENT, (3, 15), tips=True),
    _m("000000000011112", "5411", "CORNER GROCERY", OAKLAND, CARD_PRESENT, (8, 140)),
    _m("000000000011113", "5541", "SHELL OAKLAND 42", OAKLAND, CARD_PRESENT, (20, 90), tips=True),
    _m("000000000011114", "5814", "TACO TRUCK 7", SEATTLE, CARD_PRESENT, (6, 25)),
    _m(
        "000000000011115",
        "5812",
        "HARBOR BISTRO",
        NEW_YORK,
        CARD_PRESENT,
        (30, 160),
        tips=True,
        incremental=True,
    ),
    _m("000000000011116", "4121", "YELLOW CAB 1138", CHICAGO, CARD_PRESENT, (9, 60), tips=True),
    _m(
        "000000000022222",
        "7512",
        "SUNSET CAR RENTAL",
        OAKLAND,
        CARD_PRESENT,
        (80, 400),
        incremental=True,
    ),  # noqa: E501
    _m(
        "000000000022223",
        "7011",
        "BAYVIEW HOTEL",
        SEATTLE,
        CARD_PRESENT,
        (120, 600),
        incremental=True,
    ),  # noqa: E501
    _m("000000000022224", "5311", "MEGA DEPARTMENT STORE", CHICAGO, CARD_PRESENT, (15, 300)),
    _m("000000000033333", "5732", "GADGET HUB ONLINE", SEATTLE, ECOMMERCE, (20, 900)),
    _m("000000000033334", "5942", "PAGEWORTHY BOOKS", NEW_YORK, ECOMMERCE, (10, 80)),
    _m("000000000033335", "4899", "STREAMFLIX", NEW_YORK, ECOMMERCE, (8, 20)),
    _m("000000000033336", "5999", "ODDS AND ENDS MARKET", CHICAGO, ECOMMERCE, (5, 120)),
    _m("000000000033337", "4511", "SKYWAYS AIRLINES", CHICAGO, ECOMMERCE, (90, 700)),
    _m("000000000044441", "7523", "CITY PARKING", OAKLAND, CARD_PRESENT, (3, 30)),
    _m(
        "000000000055551",
        "5812",
        "THE CROWN PUB",
        LONDON,
        CARD_PRESENT,
        (10, 90),
        tips=True,
        currency_numeric="826",
    ),  # noqa: E501
    _m(
        "000000000055552",
        "5411",
        "ZABKA 1212",
        WARSAW,
        CARD_PRESENT,
        (3, 40),
        currency_numeric="985",
    ),  # noqa: E501
    _m(
        "000000000055553",
        "7011",
        "HOTEL DU LOUVRE",
        PARIS,
        CARD_PRESENT,
        (150, 500),
        incremental=True,
        currency_numeric="978",
    ),  # noqa: E501
    _m(
        "000000000055554",
        "5732",
        "AKIBA ELECTRONICS ONLINE",
        TOKYO,
        ECOMMERCE,
        (30, 600),
        currency_numeric="392",
    ),  # noqa: E501
)
ATMS: tuple[Merchant, ...] = (
    _m("000000000066661", "6011", "BANK OF OAKLAND ATM", OAKLAND, ATM, (20, 300)),
    _m("000000000066662", "6011", "CITYWIDE ATM 88", NEW_YORK, ATM, (20, 300)),
    _m(
        "000000000066663",
        "6011",
        "EURONET ATM WARSZAWA",
        WARSAW,
        ATM,
        (20, 200),
        currency_numeric="985",
    ),  # noqa: E501
)
CONVERSION_RATES = {"826": "0.79", "985": "3.95", "978": "0.92", "392": "151.20"}


def pick_merchant(rng: random.Random, *, channel: str, foreign: bool) -> Merchant:
    """A merchant of that channel, at home or abroad when there is one."""
    pool = ATMS if channel == ATM else MERCHANTS
    candidates = [m for m in pool if m.channel == channel and m.is_foreign == foreign]
    if not candidates:
        candidates = [m for m in pool if m.channel == channel]
    return rng.choice(candidates)


def purchase_amount(rng: random.Random, merchant: Merchant) -> int:
    """A price at this merchant, in cents; ATMs dispense multiples of 20.00."""
    if merchant.channel == ATM:
        return rng.randrange(merchant.low_minor // 2000, merchant.high_minor // 2000 + 1) * 2000
    # skewed towards the low end, as real baskets are
    span = merchant.high_minor - merchant.low_minor
    return merchant.low_minor + int(span * rng.random() ** 2)
