"""Knowledge documents: the text a buyer adds to an instance for the Knowledge Base Assistant to search."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Instance, InstanceStatus, KnowledgeDocument, User
from app.services import audit, organizations
from app.services.errors import ServiceError

MAX_DOCUMENTS = 200
MAX_TITLE = 200
MAX_BODY = 100_000
MAX_TOTAL_CHARS = 1_000_000  # what one run may search through in a reasonable time


class KnowledgeError(ServiceError):
    """A document rule was broken; the message is safe to show."""


def list_documents(session: Session, *, instance: Instance) -> list[KnowledgeDocument]:
    return list(session.scalars(
        select(KnowledgeDocument).where(KnowledgeDocument.instance_id == instance.id).order_by(KnowledgeDocument.id)
    ))


def add_document(session: Session, *, instance: Instance, actor: User, title: str, body: str) -> KnowledgeDocument:
    """Add a document to the instance (any member of its organization). Flushes; the caller commits."""
    organizations.require_member(session, user=actor, organization_id=instance.organization_id,
                                 not_found=KnowledgeError("Instance not found.", status=404))
    if instance.status in (InstanceStatus.CANCELLED.value, InstanceStatus.EXPIRED.value):
        raise KnowledgeError(f"This instance is {instance.status}; it cannot take new documents.", status=409)
    title, body = " ".join((title or "").split()), (body or "").replace("\x00", "").strip()
    if not title:
        raise KnowledgeError("Give the document a title.", field="title")
    if len(title) > MAX_TITLE:
        raise KnowledgeError(f"Use at most {MAX_TITLE} characters.", field="title")
    if not body:
        raise KnowledgeError("Paste the document's text.", field="body")
    if len(body) > MAX_BODY:
        raise KnowledgeError(f"Use at most {MAX_BODY:,} characters; split longer documents.", field="body")
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(func.length(KnowledgeDocument.body)), 0))
        .where(KnowledgeDocument.instance_id == instance.id)
    ).one()
    if count >= MAX_DOCUMENTS:
        raise KnowledgeError(f"An instance holds at most {MAX_DOCUMENTS} documents; delete one first.", status=409)
    if total + len(body) > MAX_TOTAL_CHARS:
        raise KnowledgeError(f"An instance holds at most {MAX_TOTAL_CHARS:,} characters of documents; "
                             f"{MAX_TOTAL_CHARS - total:,} are left.", field="body", status=409)
    document = KnowledgeDocument(instance_id=instance.id, title=title, body=body)
    session.add(document)
    session.flush()
    audit.record(session, action="knowledge.added", target_type="knowledge_document", target_id=document.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"instance_id": instance.id, "title": title, "characters": len(body)})
    return document


def delete_document(session: Session, *, instance: Instance, actor: User, document_id: int) -> None:
    """Delete one of the instance's documents (any member of its organization)."""
    organizations.require_member(session, user=actor, organization_id=instance.organization_id,
                                 not_found=KnowledgeError("Instance not found.", status=404))
    document = session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.id == document_id,
                                                              KnowledgeDocument.instance_id == instance.id))
    if document is None:
        raise KnowledgeError("Document not found.", status=404)
    session.delete(document)
    session.flush()
    audit.record(session, action="knowledge.deleted", target_type="knowledge_document", target_id=document_id,
                 organization_id=instance.organization_id, actor=actor, data={"instance_id": instance.id})
