"""SQLAlchemy 2 against sqld, through psycopg 3 and psycopg2: connect (the
dialect's own version, isolation level and type lookups), create_all of
a schema with a serial key, a foreign key and an index, an ORM round trip
with a relationship, and the Core API.
"""

import datetime
import decimal
import os

import pytest
from sqlalchemy import (
    ForeignKey,
    LargeBinary,
    Numeric,
    String,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "sa_authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    joined: Mapped[datetime.datetime]
    active: Mapped[bool] = mapped_column(default=True)
    balance: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
    avatar: Mapped[bytes | None] = mapped_column(LargeBinary)
    books: Mapped[list["Book"]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "sa_books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("sa_authors.id"))
    title: Mapped[str] = mapped_column(String(100), index=True)
    author: Mapped[Author] = relationship(back_populates="books")


@pytest.fixture(params=["psycopg", "psycopg2"])
def engine(request):
    dsn = os.environ["SQLD_TEST_DSN"].replace("postgresql://", f"postgresql+{request.param}://", 1)
    engine = create_engine(dsn)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_orm_round_trip_with_serial_keys_and_a_relationship(engine):
    joined = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)
    with Session(engine) as session:
        ann = Author(name="ann", joined=joined, balance=decimal.Decimal("12.25"), avatar=b"\x00\xff")
        ann.books = [Book(title="first"), Book(title="second")]
        session.add(ann)
        session.add(Author(name="bob", joined=joined, balance=decimal.Decimal("0")))
        session.commit()
        # The serial keys were numbered by the server and returned.
        assert ann.id == 1 and [b.id for b in ann.books] == [1, 2]
    with Session(engine) as session:
        ann = session.scalars(select(Author).where(Author.name == "ann")).one()
        assert ann.joined == joined
        assert ann.active is True
        assert ann.balance == decimal.Decimal("12.25")
        assert ann.avatar == b"\x00\xff"
        assert sorted(b.title for b in ann.books) == ["first", "second"]
        ann.balance += 1
        session.commit()
    with Session(engine) as session:
        total = session.scalar(select(func.sum(Author.balance)))
        assert total == decimal.Decimal("13.25")
        counts = session.execute(
            select(Author.name, func.count(Book.id))
            .join(Book, isouter=True)
            .group_by(Author.name)
            .order_by(Author.name)
        ).all()
        assert [tuple(r) for r in counts] == [("ann", 2), ("bob", 0)]


def test_core_statements_and_table_names(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sa_authors (name, joined, active, balance) VALUES (:n, :j, true, 1)"),
                     [{"n": f"a{i}", "j": datetime.datetime(2024, 1, 1)} for i in range(5)])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sa_authors")).scalar() == 5
        assert conn.execute(text("SHOW TRANSACTION ISOLATION LEVEL")).scalar() == "serializable"
    inspector = inspect(engine)
    assert {"sa_authors", "sa_books"} <= set(inspector.get_table_names())
    columns = {c["name"]: c for c in inspector.get_columns("sa_authors")}
    assert list(columns) == ["id", "name", "joined", "active", "balance", "avatar"]
    assert columns["name"]["nullable"] is False and columns["avatar"]["nullable"] is True
