"""Orders: placing one from a cart, reading a buyer's orders, and taking in orders a backend reports.

An order is priced from the database when it is placed (never from a form). Orders the Saleor
backend reports (its checkout completion, the order-paid webhook, reconciliation) are mirrored
here with Saleor's own lines and amounts, their SKUs mapped to our plans and credit packs.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sqlalchemy import func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.adapters.commerce.checkout import ORDER_REFERENCE_KEY, RemoteOrder, RemoteOrderLine
from app.formatting import minor_units
from app.models import (
    Cart, CartLine, CreditPack, Instance, InstanceStatus, LedgerEntry, LineKind, MemberRole, Membership, Order, OrderLine,
    OrderStatus, Organization, Payment, Plan, User, utcnow,
)
from app.services import audit, identity, invoices, recovery
from app.services import cart as carts
from app.services.errors import ServiceError

UNKNOWN_KIND = "unknown"  # a line whose SKU matches nothing we sell: recorded, never provisioned
PURCHASER_ROLES = (MemberRole.OWNER.value, MemberRole.ADMIN.value)


class OrderError(ServiceError):
    """An order rule was broken; the message is safe to show."""


class OrderNotFound(OrderError):
    def __init__(self) -> None:
        super().__init__("Order not found.", status=404)


class AlreadyPlaced(OrderError):
    """This cart, as it is, was already turned into an order (a double submit): `order` is that order."""

    def __init__(self, order: Order) -> None:
        super().__init__(f"Order {order.number} was already placed from this cart.", status=409)
        self.order = order




def to_minor(amount: object, currency: str) -> int:
    """A decimal amount (as Saleor sends it) to integer minor units, without floats; what no order can
    cost (NaN, infinities, negative or oversized amounts) is an OrderError and never reaches the database."""
    try:
        return minor_units(amount, currency)
    except ValueError as exc:
        raise OrderError(str(exc)) from None


def insert_once(session: Session, row: object) -> bool:
    """Insert a row guarded by a unique key; False when another transaction holds that key.

    On PostgreSQL a savepoint keeps the caller's transaction usable after the conflict (the
    insert waits for a concurrent holder to commit or roll back). SQLite has one writer at a time
    and pysqlite would turn a leading SAVEPOINT into its own transaction, so there the row is
    simply flushed; a rare conflict then fails the request and the sender retries.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.add(row)
        session.flush()
        return True
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def new_order_number() -> str:
    return f"DM-{secrets.token_hex(5).upper()}"


def _label_candidates(base: str):
    """`base`, then `base-2` ... `base-9`, then a few random suffixes; each fits the number column."""
    base = base[:26]
    yield base
    for n in range(2, 10):
        yield f"{base}-{n}"
    for _ in range(5):
        yield f"{base}-{secrets.token_hex(2).upper()}"


# --- where a buyer may provision ---------------------------------------------------------

def checkout_organizations(session: Session, *, user: User) -> list[Organization]:
    """Organizations the user may buy for: owner or admin; the personal workspace first."""
    identity.ensure_personal_organization(session, user=user)
    return list(session.scalars(
        select(Organization).join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id, Membership.role.in_(PURCHASER_ROLES))
        .order_by(Organization.is_personal.desc(), Organization.name)
    ))


def _purchasing_organization(session: Session, *, user: User, organization_id: int | None) -> Organization:
    allowed = checkout_organizations(session, user=user)
    if organization_id is None:
        return allowed[0]
    for org in allowed:
        if org.id == organization_id:
            return org
    raise OrderError("Choose an organization you own or administer.", field="organization_id")


def active_plan_ids(session: Session, *, organization_id: int) -> set[int]:
    """Plans the organization already subscribes to (paid, active instances)."""
    return set(session.scalars(
        select(Instance.plan_id).where(
            Instance.organization_id == organization_id, Instance.status == InstanceStatus.ACTIVE.value,
            Instance.is_trial.is_(False),
        )
    ))


# --- placing an order --------------------------------------------------------------------

def place_order(
    session: Session, *, user: User, cart: Cart, organization_id: int | None, email: str, backend: str,
) -> Order:
    """Turn the cart into a pending order priced from the database, and empty the cart (flushes).

    One state of a cart gives at most one order: a second checkout of the same cart (a double
    click, parallel submits) raises AlreadyPlaced with the first order. The cart row is locked
    first, so parallel checkouts of one cart run one after the other (PostgreSQL); the unique
    (cart, revision) key of orders holds even where there is no such lock.
    """
    email = identity.normalize_email(email or "")
    if not email or "@" not in email or len(email) > 254:
        raise OrderError("Enter the email address for the receipt.", field="email")
    if not user.email_verified:
        raise OrderError(recovery.UNVERIFIED_MESSAGE.format(action="buy"), status=403)
    revision = session.scalar(select(Cart.revision).where(Cart.id == cart.id).with_for_update())
    placed = _order_from_cart(session, cart_id=cart.id, revision=revision)
    if placed is not None:
        raise AlreadyPlaced(placed)
    org = _purchasing_organization(session, user=user, organization_id=organization_id)
    priced = carts.price_cart(session, cart)
    if priced.is_empty:
        placed = pending_order_from_cart(session, user=user, cart=cart)
        if placed is not None:
            raise AlreadyPlaced(placed)
        raise OrderError("Your cart is empty.")
    if priced.unavailable_lines:
        skus = ", ".join(p.line.sku for p in priced.unavailable_lines)
        raise OrderError(f"Some items are no longer for sale ({skus}). Remove them from your cart first.")
    currencies = {p.item.currency for p in priced.lines}
    if len(currencies) > 1:
        raise OrderError("Your cart mixes currencies; check out one currency at a time.")
    owned = active_plan_ids(session, organization_id=org.id)
    seen_offerings: set[int] = set()
    for p in priced.lines:
        item = p.item
        if item.kind == LineKind.PLAN.value:
            if p.line.quantity != carts.PLAN_QUANTITY:
                raise OrderError("A subscription plan can be bought once per organization.")
            if item.plan.offering_id in seen_offerings:
                raise OrderError(f"Your cart has two plans of {item.plan.offering.name}; keep one.")
            seen_offerings.add(item.plan.offering_id)
            if item.plan.id in owned:
                raise OrderError(
                    f"{org.name} already has an active {item.name}. Remove it from your cart or choose "
                    "another organization.", field="organization_id",
                )
        elif not 1 <= p.line.quantity <= carts.MAX_CREDIT_PACK_QUANTITY:
            raise OrderError(f"Choose between 1 and {carts.MAX_CREDIT_PACK_QUANTITY} credit packs.")
    order = Order(
        number=new_order_number(), user_id=user.id, organization_id=org.id, email=email,
        status=OrderStatus.PENDING.value, total_minor=priced.total_minor, currency=priced.currency,
        backend=backend, cart_id=cart.id, cart_revision=revision,
    )
    if not insert_once(session, order):  # a parallel checkout of this cart state holds the key
        placed = _order_from_cart(session, cart_id=cart.id, revision=revision)
        if placed is None:
            raise OrderError("Your order could not be placed just now; try again.")
        raise AlreadyPlaced(placed)
    for p in priced.lines:
        item = p.item
        session.add(OrderLine(
            order_id=order.id, kind=item.kind, sku=item.sku, name=item.name[:200],
            plan_id=item.plan.id if item.plan else None,
            credit_pack_id=item.credit_pack.id if item.credit_pack else None,
            offering_id=item.plan.offering_id if item.plan else None,
            quantity=p.line.quantity, unit_price_minor=item.unit_price_minor, total_minor=p.total_minor,
        ))
    session.flush()
    carts.clear_cart(session, cart=cart)
    audit.record(
        session, action="order.placed", target_type="order", target_id=order.id, organization_id=org.id,
        actor=user, data={"number": order.number, "total_minor": order.total_minor, "currency": order.currency,
                          "backend": backend},
    )
    session.refresh(order)
    return order


def withdraw_unsubmitted_order(session: Session, *, order_id: int, cart: Cart, actor: User | None = None) -> bool:
    """Take back a pending order the backend refused before any payment was asked for: its lines go
    back into the cart and the order is deleted, as if it had never been placed (flushes).

    The order was committed before the backend was called (so that a payment notice can always find
    it); when nothing was charged, keeping it would leave the buyer an order that can never be paid.
    False, and nothing changes, when the order is no longer pending or the backend knows it by id.
    """
    order = session.scalar(select(Order).where(Order.id == order_id).with_for_update())
    if order is None or order.status != OrderStatus.PENDING.value or order.external_id:
        return False
    session.refresh(order, ["lines"])
    have = {line.sku: line for line in session.scalars(select(CartLine).where(CartLine.cart_id == cart.id))}
    for line in order.lines:
        if line.sku in have:
            continue
        session.add(CartLine(cart_id=cart.id, sku=line.sku, quantity=line.quantity))
    audit.record(
        session, action="order.withdrawn", target_type="order", target_id=order.id,
        organization_id=order.organization_id, actor=actor,
        data={"number": order.number, "reason": "refused by the store before payment"},
    )
    session.delete(order)
    session.flush()
    carts.touch_cart(session, cart=cart)
    return True


def record_submission(session: Session, *, order_id: int, remote: RemoteOrder) -> Order:
    """The backend made `remote` of our pending order: keep its id and lines (flushes).

    The order-paid notice may have arrived while the backend was completing the order (a Saleor
    without a task queue sends it inline); the order row is locked and read afresh, so what that
    notice recorded (paid, provisioned, the backend's id) is kept and only completed here."""
    order = session.scalar(select(Order).where(Order.id == order_id).with_for_update())
    if order is None:
        raise OrderNotFound()
    session.refresh(order)
    for line in order.lines:
        session.refresh(line)
    if not order.external_id:
        order.external_id = remote.external_id[:64]
    sync_remote_lines(session, order=order, remote=remote)
    return order


def _order_from_cart(session: Session, *, cart_id: int, revision: int | None) -> Order | None:
    return session.scalar(select(Order).where(Order.cart_id == cart_id, Order.cart_revision == revision))


def pending_order_from_cart(session: Session, *, user: User, cart: Cart | None) -> Order | None:
    """The user's pending order that emptied this cart, when nothing changed in the cart since:
    where a repeated checkout of that cart should lead."""
    if cart is None:
        return None
    revision = session.scalar(select(Cart.revision).where(Cart.id == cart.id))
    if not revision:
        return None
    order = _order_from_cart(session, cart_id=cart.id, revision=revision - 1)
    if order is None or order.user_id != user.id or order.status != OrderStatus.PENDING.value:
        return None
    return order


# --- reading orders ----------------------------------------------------------------------

def get_order_for_user(session: Session, *, user: User, order_id: int, operators_see_all: bool = False) -> Order:
    """One of the user's own orders; anyone else's is not found (unless `operators_see_all` and the
    user is an operator, who refunds any order)."""
    mine = Order.user_id == user.id
    if operators_see_all and user.has_role("operator"):
        mine = true()
    order = session.scalar(
        select(Order).where(Order.id == order_id, mine)
        .options(selectinload(Order.lines), selectinload(Order.payments), selectinload(Order.organization))
    )
    if order is None:
        raise OrderNotFound()
    return order


def list_orders_for_user(session: Session, *, user: User, page: int = 1, per_page: int = 20) -> tuple[list[Order], int]:
    total = session.scalar(select(func.count()).select_from(Order).where(Order.user_id == user.id)) or 0
    page = max(1, page)
    orders = list(session.scalars(
        select(Order).where(Order.user_id == user.id).options(selectinload(Order.lines))
        .order_by(Order.created_at.desc(), Order.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ))
    return orders, total


@dataclass
class ProvisionedItems:
    instances_by_line: dict[int, Instance] = field(default_factory=dict)
    entries_by_line: dict[int, list[LedgerEntry]] = field(default_factory=dict)


def provisioned_items(session: Session, *, order: Order) -> ProvisionedItems:
    """The instances and ledger entries each line of the order created."""
    from app.services.provisioning import credit_key, plan_credit_key

    items = ProvisionedItems()
    line_ids = [line.id for line in order.lines]
    if not line_ids:
        return items
    for instance in session.scalars(select(Instance).where(Instance.source_order_line_id.in_(line_ids))):
        items.instances_by_line[instance.source_order_line_id] = instance
    if order.renews_instance_id is not None and order.status == OrderStatus.PAID.value:
        # a paid renewal or upgrade: its line went to the subscription it names
        renewed = session.get(Instance, order.renews_instance_id)
        if renewed is not None:
            for line in order.lines:
                if line.kind == LineKind.PLAN.value:
                    items.instances_by_line[line.id] = renewed
    keys = {}
    for line in order.lines:
        keys[credit_key(line.id)] = line.id
        keys[plan_credit_key(line.id)] = line.id
    for entry in session.scalars(select(LedgerEntry).where(LedgerEntry.idempotency_key.in_(list(keys)))):
        items.entries_by_line.setdefault(keys[entry.idempotency_key], []).append(entry)
    return items


# --- payment state -----------------------------------------------------------------------

def mark_order_paid(session: Session, *, order: Order, actor: User | None = None, actor_label: str | None = None) -> bool:
    """Pending -> paid, once: True only for the call that made the change (safe under concurrency).

    The call that makes the change also issues the order's invoice, in the same transaction: every
    paid order (first purchase or renewal, local or Saleor) has exactly one."""
    now = utcnow()
    changed = session.execute(
        update(Order).where(Order.id == order.id, Order.status == OrderStatus.PENDING.value)
        .values(status=OrderStatus.PAID.value, paid_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(order, ["status", "paid_at"])
    if changed:
        # a charge sent to the store whose answer was lost (a renewal): the store has now confirmed it
        session.execute(update(Payment).where(Payment.order_id == order.id, Payment.status == "pending")
                        .values(status="succeeded", message="Confirmed by the store.")
                        .execution_options(synchronize_session=False))
        audit.record(
            session, action="order.paid", target_type="order", target_id=order.id,
            organization_id=order.organization_id, actor=actor, actor_label=actor_label,
            data={"number": order.number, "total_minor": order.total_minor, "currency": order.currency},
        )
        invoices.issue_invoice_for_order(session, order=order, now=now)
    return bool(changed)


# --- orders reported by a backend --------------------------------------------------------

def _classify(session: Session, sku: str | None) -> tuple[str, Plan | None, CreditPack | None]:
    """A SKU of a paid order to what it buys. Paid is paid: a plan withdrawn since still counts."""
    if sku:
        plan = session.scalar(select(Plan).where(Plan.sku == sku))
        if plan is not None:
            return LineKind.PLAN.value, plan, None
        pack = session.scalar(select(CreditPack).where(CreditPack.sku == sku))
        if pack is not None:
            return LineKind.CREDIT_PACK.value, None, pack
    return UNKNOWN_KIND, None, None


def _apply_remote_line(session: Session, line: OrderLine, remote: RemoteOrderLine, currency: str) -> None:
    line.external_line_id = (remote.external_id or "")[:64] or None
    line.quantity = max(1, remote.quantity)
    if remote.unit_price_minor is not None:
        line.unit_price_minor = remote.unit_price_minor
    line.total_minor = line.unit_price_minor * line.quantity


def sync_remote_lines(session: Session, *, order: Order, remote: RemoteOrder) -> list[str]:
    """Make the order's lines the backend's lines (matched by line id, then SKU). Returns unknown SKUs.

    Once any line was provisioned the lines are settled and only gain their backend ids.
    """
    if remote.lines is None:
        return [line.sku for line in order.lines if line.kind == UNKNOWN_KIND]
    currency = (remote.currency or order.currency).upper()[:3]
    settled = any(line.provisioned_at for line in order.lines)
    unmatched = list(order.lines)
    for rl in remote.lines:
        match = next((l for l in unmatched if rl.external_id and l.external_line_id == rl.external_id), None)
        match = match or next((l for l in unmatched if not l.external_line_id and rl.sku and l.sku == rl.sku), None)
        if match is not None:
            unmatched.remove(match)
            if settled:
                match.external_line_id = match.external_line_id or (rl.external_id or "")[:64] or None
            else:
                _apply_remote_line(session, match, rl, currency)
            continue
        if settled:
            continue
        kind, plan, pack = _classify(session, rl.sku)
        unit = rl.unit_price_minor if rl.unit_price_minor is not None else 0
        new = OrderLine(
            order_id=order.id, kind=kind, sku=(rl.sku or "(none)")[:64], name=(rl.name or rl.sku or "Item")[:200],
            plan_id=plan.id if plan else None, credit_pack_id=pack.id if pack else None,
            offering_id=plan.offering_id if plan else None, quantity=max(1, rl.quantity),
            unit_price_minor=unit, total_minor=unit * max(1, rl.quantity),
            external_line_id=(rl.external_id or "")[:64] or None,
        )
        session.add(new)
        order.lines.append(new)
    if not settled:
        for line in unmatched:  # not in the backend's order: not paid for, never provisioned
            order.lines.remove(line)
            session.delete(line)
        if remote.total_minor is not None:
            order.total_minor = remote.total_minor
            order.currency = currency
    session.flush()
    return [line.sku for line in order.lines if line.kind == UNKNOWN_KIND]


@dataclass
class RemoteOrderResult:
    order: Order | None
    created: bool = False
    problem: str | None = None  # why the order could not be taken in (nothing provisioned)
    retry_later: bool = False  # it names an order of ours that is not committed (yet)


def find_or_create_remote_order(
    session: Session, *, remote: RemoteOrder, backend: str = "saleor", import_unmatched_reference: bool = False,
) -> RemoteOrderResult:
    """Our mirror of a backend order: by its id, by the order reference we put on its checkout, or
    new for the account with the order's email (personal workspace).

    An order that names one of ours we cannot see is, in the normal case, one whose checkout is
    still committing on the buyer's request: the caller should try again later. Reconciliation
    imports it anyway once it is old enough (`import_unmatched_reference`), e.g. after that
    request failed after Saleor had already taken the payment.
    """
    external_id = remote.external_id[:64]
    order = session.scalar(select(Order).where(Order.backend == backend, Order.external_id == external_id))
    if order is None and remote.metadata.get(ORDER_REFERENCE_KEY):
        order = session.scalar(select(Order).where(
            Order.backend == backend, Order.number == remote.metadata[ORDER_REFERENCE_KEY][:32],
            Order.external_id.is_(None),
        ))
        if order is not None:
            order.external_id = external_id
            session.flush()
    if order is not None:
        return RemoteOrderResult(order=order)
    if remote.metadata.get(ORDER_REFERENCE_KEY) and not import_unmatched_reference:
        return RemoteOrderResult(order=None, retry_later=True,
                                 problem=f"Order {remote.metadata[ORDER_REFERENCE_KEY][:32]} is not recorded here yet.")
    email = identity.normalize_email(remote.email or "")
    user = identity.get_user_by_email(session, email) if email else None
    if user is None:
        return RemoteOrderResult(order=None, problem=f"No account has the order's email address ({email or 'none'}).")
    if remote.lines is None:
        return RemoteOrderResult(order=None, problem="The report has no order lines; reconciliation will fetch them.")
    org = identity.ensure_personal_organization(session, user=user)
    currency = (remote.currency or "USD").upper()[:3]
    # The backend's order id is the key; its number is only a label for people. Two backend orders
    # may share a number (another Saleor, a reset one), so a taken number gets a suffix.
    for number in _label_candidates(f"S-{remote.number or secrets.token_hex(4)}"):
        if session.scalar(select(Order.id).where(Order.number == number)) is not None:
            continue
        order = Order(
            number=number, user_id=user.id, organization_id=org.id,
            email=email, status=OrderStatus.PENDING.value, total_minor=remote.total_minor or 0,
            currency=currency, backend=backend, external_id=external_id,
        )
        if insert_once(session, order):
            break
        mirrored = session.scalar(select(Order).where(Order.backend == backend, Order.external_id == external_id))
        if mirrored is not None:  # another delivery mirrored it first
            return RemoteOrderResult(order=mirrored)
        # else another order took this number at the same moment: try the next label
    else:
        raise OrderError(f"Order {external_id} could not be given an order number.")
    audit.record(
        session, action="order.imported", target_type="order", target_id=order.id, organization_id=org.id,
        actor_label=backend, data={"number": order.number, "external_id": external_id},
    )
    return RemoteOrderResult(order=order, created=True)


@dataclass
class AppliedPayment:
    order: Order | None
    provisioned_lines: int = 0
    unknown_skus: list[str] = field(default_factory=list)
    problem: str | None = None
    newly_paid: bool = False
    retry_later: bool = False


def apply_remote_payment(
    session: Session, *, remote: RemoteOrder, actor_label: str, backend: str = "saleor",
    import_unmatched_reference: bool = False,
) -> AppliedPayment:
    """A backend says this order is fully paid: mirror it, mark it paid, provision it (flushes).

    Used by the order-paid webhook and by reconciliation; repeating it adds nothing.
    """
    from app.services import provisioning

    if not remote.fully_paid:
        return AppliedPayment(order=None, problem="The order is not fully paid yet.")
    found = find_or_create_remote_order(session, remote=remote, backend=backend,
                                        import_unmatched_reference=import_unmatched_reference)
    if found.order is None:
        return AppliedPayment(order=None, problem=found.problem, retry_later=found.retry_later)
    order = found.order
    if not found.created:
        # one delivery at a time per order: a concurrent one waits here, then sees what this one wrote
        session.refresh(order, with_for_update=True)
        for line in order.lines:
            session.refresh(line)
    if order.status == OrderStatus.CANCELLED.value:
        return AppliedPayment(order=order, problem="The order was cancelled here; it is not provisioned.")
    unknown = sync_remote_lines(session, order=order, remote=remote)
    if not order.lines:
        return AppliedPayment(order=order, problem="The order has no lines.")
    newly_paid = mark_order_paid(session, order=order, actor_label=actor_label)
    result = provisioning.handle_order_paid(session, order=order, actor_label=actor_label)
    return AppliedPayment(
        order=order, provisioned_lines=len(result.provisioned_line_ids), unknown_skus=unknown,
        newly_paid=newly_paid,
    )


def unprovisioned_paid_orders(session: Session, *, limit: int = 500) -> list[Order]:
    """Paid orders with a line still waiting for its instance or credits."""
    return list(session.scalars(
        select(Order).where(
            Order.status == OrderStatus.PAID.value,
            Order.id.in_(select(OrderLine.order_id).where(
                OrderLine.provisioned_at.is_(None), OrderLine.kind.in_([LineKind.PLAN.value, LineKind.CREDIT_PACK.value]),
            )),
        ).order_by(Order.id).limit(limit)
    ))
