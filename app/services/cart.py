"""The shopping cart: lines by SKU, always priced from the catalog when read.

A cart belongs to a signed-in user (by user id) or to an anonymous visitor (by a random token kept
in the session cookie). Only SKUs and quantities are stored; the price of a line is looked up in
the database every time, so nothing a browser sends can change what an order costs.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session, selectinload

from app.models import Cart, CartLine, CreditPack, LineKind, Offering, OfferingStatus, Plan, User
from app.services.errors import ServiceError

MAX_CREDIT_PACK_QUANTITY = 100
PLAN_QUANTITY = 1


class CartError(ServiceError):
    """A cart rule was broken; the message is safe to show."""


class CartLineNotFound(CartError):
    def __init__(self) -> None:
        super().__init__("That line is not in your cart.", status=404)


@dataclass(frozen=True)
class Purchasable:
    """What a SKU sells, priced from the database."""

    sku: str
    kind: str  # LineKind value
    name: str
    unit_price_minor: int
    currency: str
    plan: Plan | None = None
    credit_pack: CreditPack | None = None

    @property
    def offering(self) -> Offering | None:
        return self.plan.offering if self.plan else None

    @property
    def max_quantity(self) -> int:
        return PLAN_QUANTITY if self.kind == LineKind.PLAN.value else MAX_CREDIT_PACK_QUANTITY

    @property
    def credits(self) -> int:
        """Credits one unit brings: a pack's size, or a plan's included credits."""
        if self.credit_pack is not None:
            return self.credit_pack.credits
        return self.plan.included_credits if self.plan else 0


@dataclass
class PricedLine:
    line: CartLine
    item: Purchasable | None  # None: the SKU is no longer sold

    @property
    def total_minor(self) -> int:
        return self.item.unit_price_minor * self.line.quantity if self.item else 0


@dataclass
class PricedCart:
    cart: Cart | None
    lines: list[PricedLine] = field(default_factory=list)

    @property
    def available_lines(self) -> list[PricedLine]:
        return [p for p in self.lines if p.item is not None]

    @property
    def unavailable_lines(self) -> list[PricedLine]:
        return [p for p in self.lines if p.item is None]

    @property
    def total_minor(self) -> int:
        return sum(p.total_minor for p in self.lines)

    @property
    def currency(self) -> str:
        items = [p.item for p in self.lines if p.item is not None]
        return items[0].currency if items else "USD"

    @property
    def item_count(self) -> int:
        return sum(p.line.quantity for p in self.lines)

    @property
    def is_empty(self) -> bool:
        return not self.lines


def new_cart_token() -> str:
    return secrets.token_urlsafe(32)


def find_purchasable(session: Session, sku: str) -> Purchasable | None:
    """The plan of a published offering, or an active credit pack, with this SKU; None otherwise."""
    sku = (sku or "").strip()
    if not sku or len(sku) > 64:
        return None
    plan = session.scalar(
        select(Plan).join(Plan.offering)
        .where(Plan.sku == sku, Offering.status == OfferingStatus.PUBLISHED.value)
        .options(selectinload(Plan.offering))
    )
    if plan is not None:
        return Purchasable(
            sku=plan.sku, kind=LineKind.PLAN.value, name=f"{plan.offering.name} · {plan.name} plan",
            unit_price_minor=plan.price_minor, currency=plan.currency, plan=plan,
        )
    pack = session.scalar(select(CreditPack).where(CreditPack.sku == sku, CreditPack.active.is_(True)))
    if pack is not None:
        return Purchasable(
            sku=pack.sku, kind=LineKind.CREDIT_PACK.value, name=f"Credit pack · {pack.name}",
            unit_price_minor=pack.price_minor, currency=pack.currency, credit_pack=pack,
        )
    return None


def credit_packs_for_sale(session: Session) -> list[CreditPack]:
    return list(session.scalars(select(CreditPack).where(CreditPack.active.is_(True)).order_by(CreditPack.price_minor)))


# --- finding and creating carts ----------------------------------------------------------

def find_cart(session: Session, *, user: User | None, token: str | None) -> Cart | None:
    """The signed-in user's cart, or the anonymous cart behind `token`.

    A token only ever opens an anonymous cart: a token that belongs to someone's account cart
    opens nothing.
    """
    if user is not None:
        return session.scalar(select(Cart).where(Cart.user_id == user.id).order_by(Cart.id).limit(1))
    if not token or len(token) > 64:
        return None
    return session.scalar(select(Cart).where(Cart.token == token, Cart.user_id.is_(None)))


def get_or_create_cart(session: Session, *, user: User | None, token: str | None) -> Cart:
    """The current cart, created when there is none (the caller keeps the new cart's token)."""
    cart = find_cart(session, user=user, token=token)
    if cart is None:
        cart = Cart(token=new_cart_token(), user_id=user.id if user else None)
        session.add(cart)
        session.flush()
    return cart


def count_items(session: Session, *, user: User | None, token: str | None) -> int:
    """Units in the current cart (for the header); reads only, in one prepared statement (it runs on every
    page): the cart is the one find_cart opens."""
    if user is not None:
        return int(session.connection().execute(_USER_CART_UNITS, {"user_id": user.id}).scalar_one())
    if not token or len(token) > 64:
        return 0
    return int(session.connection().execute(_TOKEN_CART_UNITS, {"token": token}).scalar_one())


def _units_in(cart_id):
    return select(func.coalesce(func.sum(CartLine.quantity), 0)).where(CartLine.cart_id == cart_id.scalar_subquery())


_USER_CART_UNITS = _units_in(
    select(Cart.id).where(Cart.user_id == bindparam("user_id")).order_by(Cart.id).limit(1))
_TOKEN_CART_UNITS = _units_in(
    select(Cart.id).where(Cart.token == bindparam("token"), Cart.user_id.is_(None)))


def price_cart(session: Session, cart: Cart | None) -> PricedCart:
    if cart is None:
        return PricedCart(cart=None)
    lines = list(session.scalars(select(CartLine).where(CartLine.cart_id == cart.id).order_by(CartLine.id)))
    return PricedCart(cart=cart, lines=[PricedLine(line=line, item=find_purchasable(session, line.sku)) for line in lines])


# --- changing a cart ---------------------------------------------------------------------

@dataclass(frozen=True)
class CartChange:
    line: CartLine
    item: Purchasable
    message: str


def _check_quantity(item: Purchasable, quantity: int) -> None:
    if item.kind == LineKind.PLAN.value:
        if quantity != PLAN_QUANTITY:
            raise CartError("A subscription plan can be bought once per organization: the quantity is 1.",
                            field="quantity")
        return
    if not 1 <= quantity <= MAX_CREDIT_PACK_QUANTITY:
        raise CartError(f"Choose between 1 and {MAX_CREDIT_PACK_QUANTITY} credit packs.", field="quantity")


def _lines_with_items(session: Session, cart: Cart) -> list[PricedLine]:
    return price_cart(session, cart).lines


def add_to_cart(session: Session, *, cart: Cart, sku: str, quantity: int) -> CartChange:
    """Add `quantity` of a SKU. A plan replaces another plan of the same offering; packs add up."""
    item = find_purchasable(session, sku)
    if item is None:
        raise CartError("That product is not for sale. It may have been withdrawn; pick another plan or pack.",
                        field="sku")
    _check_quantity(item, quantity)
    others = [p for p in _lines_with_items(session, cart) if p.item is not None and p.line.sku != item.sku]
    if others and any(p.item.currency != item.currency for p in others):
        raise CartError(f"Your cart is priced in {others[0].item.currency}; {item.name} is priced in "
                        f"{item.currency}. Check out separately.", field="sku")
    existing = session.scalar(select(CartLine).where(CartLine.cart_id == cart.id, CartLine.sku == item.sku))
    if item.kind == LineKind.PLAN.value:
        replaced = [p for p in others if p.item.plan is not None and p.item.plan.offering_id == item.plan.offering_id]
        for p in replaced:
            session.delete(p.line)
        if existing is not None:
            if replaced:
                _changed(session, cart)
            return CartChange(existing, item, f"{item.name} is already in your cart.")
        line = CartLine(cart_id=cart.id, sku=item.sku, quantity=PLAN_QUANTITY)
        session.add(line)
        _changed(session, cart)
        if replaced:
            return CartChange(line, item, f"Switched to {item.name}; a subscription has one plan.")
        return CartChange(line, item, f"Added {item.name} to your cart.")
    if existing is not None:
        total = existing.quantity + quantity
        if total > MAX_CREDIT_PACK_QUANTITY:
            raise CartError(f"You already have {existing.quantity} of {item.name} in your cart; at most "
                            f"{MAX_CREDIT_PACK_QUANTITY} per order.", field="quantity")
        existing.quantity = total
        _changed(session, cart)
        return CartChange(existing, item, f"Your cart now has {total} × {item.name}.")
    line = CartLine(cart_id=cart.id, sku=item.sku, quantity=quantity)
    session.add(line)
    _changed(session, cart)
    return CartChange(line, item, f"Added {quantity} × {item.name} to your cart.")


def _line_of(session: Session, cart: Cart, line_id: int) -> CartLine:
    line = session.scalar(select(CartLine).where(CartLine.id == line_id, CartLine.cart_id == cart.id))
    if line is None:
        raise CartLineNotFound()
    return line


def update_line(session: Session, *, cart: Cart, line_id: int, quantity: int) -> CartChange:
    line = _line_of(session, cart, line_id)
    item = find_purchasable(session, line.sku)
    if item is None:
        raise CartError("That product is no longer for sale; remove it from your cart.", field="quantity")
    _check_quantity(item, quantity)
    line.quantity = quantity
    _changed(session, cart)
    return CartChange(line, item, f"Updated {item.name}.")


def remove_line(session: Session, *, cart: Cart, line_id: int) -> str:
    line = _line_of(session, cart, line_id)
    item = find_purchasable(session, line.sku)
    session.delete(line)
    _changed(session, cart)
    return f"Removed {item.name if item else line.sku} from your cart."


def clear_cart(session: Session, *, cart: Cart) -> None:
    session.execute(delete(CartLine).where(CartLine.cart_id == cart.id))
    session.expire(cart, ["lines"])
    _changed(session, cart)


def touch_cart(session: Session, *, cart: Cart) -> None:
    """Count a change made to the cart's lines outside this module (an order taken back into it)."""
    session.expire(cart, ["lines"])
    _changed(session, cart)


def _changed(session: Session, cart: Cart) -> None:
    """Count a change of the cart's lines (in SQL, so concurrent changes each count) and flush."""
    cart.revision = Cart.revision + 1
    session.flush()


def merge_carts(session: Session, *, user: User, token: str | None) -> Cart | None:
    """At sign-in: the anonymous cart behind `token` joins the user's cart.

    The anonymous choices are the newer ones: its plan wins over a plan of the same offering,
    and pack quantities add up to the limit. Lines that are no longer sold are dropped.
    """
    if not token:
        return find_cart(session, user=user, token=None)
    anonymous = find_cart(session, user=None, token=token)
    if anonymous is None:
        return find_cart(session, user=user, token=None)
    mine = find_cart(session, user=user, token=None)
    if mine is None:
        anonymous.user_id = user.id
        session.flush()
        return anonymous
    for line in list(session.scalars(select(CartLine).where(CartLine.cart_id == anonymous.id).order_by(CartLine.id))):
        item = find_purchasable(session, line.sku)
        if item is None:
            continue
        existing = session.scalar(select(CartLine).where(CartLine.cart_id == mine.id, CartLine.sku == item.sku))
        if item.kind == LineKind.CREDIT_PACK.value and existing is not None:
            existing.quantity = min(MAX_CREDIT_PACK_QUANTITY, existing.quantity + line.quantity)
            _changed(session, mine)
            continue
        try:
            add_to_cart(session, cart=mine, sku=item.sku, quantity=min(line.quantity, item.max_quantity))
        except CartError:
            continue  # e.g. a different currency: the user's own cart stays as it was
    session.delete(anonymous)
    session.flush()
    return mine
