"""Seeded data for the lab: realistic Brazilian users, companies (valid CNPJ), licitações and proposals in BRL."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import unicodedata
from pathlib import Path

from cockpit.lab.domain import SQLITE_SCHEMA, TABLE_ORDER, TABLES, make_cnpj, make_cpf

FIRST_NAMES = (
    "Ana",
    "Maria",
    "Juliana",
    "Fernanda",
    "Patrícia",
    "Camila",
    "Aline",
    "Beatriz",
    "Larissa",
    "Gabriela",
    "Letícia",
    "Mariana",
    "Vanessa",
    "Renata",
    "Luciana",
    "Cláudia",
    "Adriana",
    "Simone",
    "Tatiane",
    "Débora",
    "João",
    "José",
    "Carlos",
    "Paulo",
    "Lucas",
    "Pedro",
    "Marcos",
    "Rafael",
    "Gustavo",
    "Felipe",
    "Bruno",
    "Thiago",
    "Rodrigo",
    "André",
    "Fábio",
    "Eduardo",
    "Leandro",
    "Márcio",
    "Sérgio",
    "Antônio",
    "Luiz",
    "Francisco",
    "Raimundo",
    "Sebastião",
    "Vinícius",
    "Matheus",
    "Guilherme",
    "Henrique",
    "Otávio",
    "Caio",
)
SURNAMES = (
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
    "Moreira",
    "Nunes",
    "Marques",
    "Machado",
    "Mendes",
    "Freitas",
    "Cardoso",
    "Ramos",
    "Gonçalves",
    "Santana",
    "Teixeira",
    "Araújo",
    "Cavalcanti",
    "Monteiro",
    "Moura",
    "Batista",
)
CITIES = (
    ("São Paulo", "SP"),
    ("Campinas", "SP"),
    ("Santos", "SP"),
    ("Ribeirão Preto", "SP"),
    ("Rio de Janeiro", "RJ"),
    ("Niterói", "RJ"),
    ("Belo Horizonte", "MG"),
    ("Uberlândia", "MG"),
    ("Juiz de Fora", "MG"),
    ("Curitiba", "PR"),
    ("Londrina", "PR"),
    ("Porto Alegre", "RS"),
    ("Caxias do Sul", "RS"),
    ("Florianópolis", "SC"),
    ("Joinville", "SC"),
    ("Salvador", "BA"),
    ("Feira de Santana", "BA"),
    ("Recife", "PE"),
    ("Fortaleza", "CE"),
    ("Natal", "RN"),
    ("João Pessoa", "PB"),
    ("Maceió", "AL"),
    ("Aracaju", "SE"),
    ("São Luís", "MA"),
    ("Teresina", "PI"),
    ("Belém", "PA"),
    ("Manaus", "AM"),
    ("Goiânia", "GO"),
    ("Brasília", "DF"),
    ("Campo Grande", "MS"),
    ("Cuiabá", "MT"),
    ("Vitória", "ES"),
    ("Palmas", "TO"),
    ("Porto Velho", "RO"),
)
COMPANY_WORDS = (
    "Tecnologia",
    "Engenharia",
    "Construções",
    "Serviços",
    "Comércio",
    "Distribuidora",
    "Soluções",
    "Sistemas",
    "Consultoria",
    "Logística",
    "Saneamento",
    "Informática",
    "Suprimentos",
    "Alimentos",
    "Medicamentos",
)
COMPANY_SUFFIXES = ("Ltda.", "S.A.", "EIRELI", "ME", "EPP")
AGENCIES = (
    "Prefeitura Municipal de {city}",
    "Secretaria de Estado da Saúde - {uf}",
    "Secretaria de Estado da Educação - {uf}",
    "Câmara Municipal de {city}",
    "Tribunal de Justiça - {uf}",
    "Universidade Federal - {uf}",
    "Companhia de Saneamento - {uf}",
    "Departamento de Estradas de Rodagem - {uf}",
    "Hospital Regional de {city}",
    "Instituto Federal - {uf}",
)
MODALITIES = (
    "Pregão Eletrônico",
    "Pregão Presencial",
    "Concorrência",
    "Tomada de Preços",
    "Dispensa",
    "Convite",
)
OBJECTS = (
    "Aquisição de material de escritório",
    "Contratação de serviços de limpeza e conservação",
    "Aquisição de medicamentos para a rede municipal",
    "Contratação de empresa para pavimentação asfáltica",
    "Fornecimento de merenda escolar",
    "Aquisição de computadores e periféricos",
    "Contratação de serviços de vigilância patrimonial",
    "Locação de veículos com motorista",
    "Reforma de unidade básica de saúde",
    "Aquisição de equipamentos hospitalares",
    "Contratação de serviços de manutenção predial",
    "Fornecimento de combustível para a frota",
    "Licenciamento de software de gestão",
    "Construção de creche municipal",
    "Aquisição de uniformes escolares",
    "Serviços de coleta de resíduos sólidos",
    "Fornecimento de água mineral e gás",
    "Implantação de rede de fibra óptica",
)
ROLES = ("analyst", "analyst", "analyst", "manager", "admin", "viewer")
PROPOSAL_STATUSES = ("draft", "submitted", "submitted", "submitted", "won", "lost", "lost")
OPPORTUNITY_STATUSES = ("open", "open", "open", "closed", "awarded", "cancelled")


def ascii_slug(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if c.isascii() and (c.isalnum() or c == " ")
    ).lower()


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)} {rng.choice(SURNAMES)}"


def email_for(name: str, n: int) -> str:
    parts = ascii_slug(name).split()
    domain = ("gmail.com", "hotmail.com", "outlook.com", "uol.com.br", "empresa.com.br")[n % 5]
    return f"{parts[0]}.{parts[-1]}{n}@{domain}"


def company_name(rng: random.Random) -> tuple[str, str]:
    trade = f"{rng.choice(SURNAMES)} {rng.choice(COMPANY_WORDS)}"
    return f"{trade} {rng.choice(COMPANY_SUFFIXES)}", trade


def brl(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)


def table_sizes(rows: int) -> dict[str, int]:
    """How `rows` seeded rows are spread: a fifth users, companies and opportunities each, two fifths proposals."""
    rows = max(rows, 10)
    fifth = rows // 5
    return {"users": fifth, "companies": fifth, "opportunities": fifth, "proposals": rows - 3 * fifth}


def generate(rows: int = 5000, seed: int = 42) -> dict[str, list[tuple]]:
    """The seeded rows per table (columns in the order of domain.TABLES[t].columns), the same for a given seed."""
    rng = random.Random(seed)
    sizes = table_sizes(rows)
    today = dt.date(2026, 11, 1)

    def stamp(days_back: int) -> str:
        moment = dt.datetime(2026, 11, 1, 8) - dt.timedelta(
            days=rng.randint(0, days_back), seconds=rng.randint(0, 86399)
        )
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    users = []
    for i in range(1, sizes["users"] + 1):
        name = person_name(rng)
        created = stamp(720)
        users.append(
            (
                i,
                name,
                email_for(name, i),
                make_cpf(rng),
                rng.choice(ROLES),
                rng.random() > 0.05,
                created,
                created,
            )
        )

    companies = []
    cnpjs: set[str] = set()
    for i in range(1, sizes["companies"] + 1):
        legal, trade = company_name(rng)
        cnpj = make_cnpj(rng)
        while cnpj in cnpjs:
            cnpj = make_cnpj(rng)
        cnpjs.add(cnpj)
        city, uf = rng.choice(CITIES)
        created = stamp(720)
        companies.append((i, legal, trade, cnpj, city, uf, rng.randint(1, sizes["users"]), created, created))

    opportunities = []
    for i in range(1, sizes["opportunities"] + 1):
        city, uf = rng.choice(CITIES)
        published = today - dt.timedelta(days=rng.randint(0, 365))
        deadline = published + dt.timedelta(days=rng.randint(8, 60))
        created = f"{published.isoformat()} {rng.randint(7, 18):02d}:{rng.randint(0, 59):02d}:00"
        opportunities.append(
            (
                i,
                f"{rng.choice(OBJECTS)} - Edital nº {rng.randint(1, 350)}/{published.year}",
                rng.choice(AGENCIES).format(city=city, uf=uf),
                rng.choice(MODALITIES),
                brl(rng, 8_000, 4_500_000),
                published.isoformat(),
                deadline.isoformat(),
                rng.choice(OPPORTUNITY_STATUSES),
                uf,
                created,
                created,
            )
        )

    proposals = []
    for i in range(1, sizes["proposals"] + 1):
        opp = opportunities[rng.randrange(len(opportunities))]
        status = rng.choice(PROPOSAL_STATUSES)
        created = stamp(365)
        proposals.append(
            (
                i,
                opp[0],
                rng.randint(1, sizes["companies"]),
                rng.randint(1, sizes["users"]),
                round(opp[4] * rng.uniform(0.72, 1.05), 2),
                status,
                None if status == "draft" else created,
                rng.choice(
                    (None, "Proposta conforme edital.", "Inclui garantia de 12 meses.", "Entrega em 30 dias.")
                ),
                created,
                created,
            )
        )
    return {"users": users, "companies": companies, "opportunities": opportunities, "proposals": proposals}


def seed_sqlite(path: Path, rows: int = 5000, seed: int = 42) -> dict[str, int]:
    """Create the schema in a new SQLite file (WAL) and fill it. Returns the row count per table."""
    data = generate(rows, seed)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SQLITE_SCHEMA)
        for table in TABLE_ORDER:
            marks = ",".join("?" * len(TABLES[table].columns))
            conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', data[table])
        conn.commit()
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in TABLE_ORDER}
    finally:
        conn.close()
