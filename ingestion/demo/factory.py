"""The demo factory: families, phases, defects, names. Figures are invented but shaped like a composite shop."""

from __future__ import annotations

import numpy as np

FAMILIES = ("K1", "K2", "K4", "C1", "C2", "C4")


FAMILY_PRODUCT_SHARE = np.array([0.22, 0.22, 0.12, 0.18, 0.16, 0.10])


FAMILY_DEMAND = np.array([1.25, 1.2, 1.0, 0.9, 0.85, 0.7])  # order popularity multiplier


FAMILY_FINISHED_KG = np.array([12.0, 18.0, 30.0, 16.0, 26.0, 40.0])


FAMILY_WORK = np.array([1.0, 1.3, 1.9, 1.1, 1.45, 2.05])  # labour-time multiplier


FAMILY_ROUTE_MEAN = np.array([14.5, 16.5, 20.0, 14.5, 17.0, 20.5])


FAMILY_DEFECTS = np.array([1.0, 1.15, 1.6, 1.1, 1.3, 1.8])


FAMILY_SEVERITY_SHIFT = np.array([0.0, 0.03, 0.10, 0.02, 0.06, 0.12])


IS_CANOE = np.array([False, False, False, True, True, True])


PRODUCT_LINES = {
    "K": ("Sprint", "Marathon", "Touring", "Slalom", "Wildwater", "Ocean"),
    "C": ("Sprint", "Marathon", "Slalom", "Touring", "Open"),
}


PRODUCT_VARIANTS = ("Elite", "Pro", "Club", "Junior", "Racer", "Lite", "Carbon", "Vision", "Apex", "Storm", "Vector")


# name, kind, production, automatic, labour hours (median), queue hours at normal load,
# optional-route weight for kayaks, for canoes (0: core step or never optional)
PHASE_TABLE: list[tuple[str, str, int, int, float, float, float, float]] = [
    ("Lançamento OF", "admin", 0, 0, 0.0, 0.5, 0, 0),
    ("Planeamento", "admin", 0, 0, 0.0, 6.0, 2.0, 2.0),
    ("Aprovisionamento Materiais", "admin", 0, 0, 0.0, 10.0, 1.5, 1.5),
    ("Reserva Molde", "admin", 0, 0, 0.0, 3.0, 0.6, 0.6),
    ("Emissão Etiquetas", "admin", 0, 0, 0.0, 1.0, 0.5, 0.5),
    ("Limpeza Molde", "mould", 1, 0, 0.5, 1.0, 0.8, 0.8),
    ("Aplicação Desmoldante", "mould", 1, 0, 0.3, 0.5, 1.0, 1.0),
    ("Preparação Molde Casco", "mould", 1, 0, 0.8, 2.0, 0, 0),
    ("Preparação Molde Deck", "mould", 1, 0, 0.6, 1.5, 3.0, 2.5),
    ("Corte Tecidos", "cut", 1, 0, 0.8, 1.5, 1.2, 1.2),
    ("Corte Núcleo", "cut", 1, 1, 0.3, 1.0, 0.7, 0.7),
    ("Corte CNC Carbono", "cut", 1, 1, 0.4, 1.0, 0.7, 0.5),
    ("Gelcoat Casco", "gel", 1, 0, 0.7, 3.0, 0, 0),
    ("Gelcoat Deck", "gel", 1, 0, 0.5, 2.0, 3.0, 2.5),
    ("Gelcoat Cor Especial", "gel", 1, 0, 0.6, 2.0, 0.4, 0.4),
    ("Cura Gelcoat", "cure", 1, 1, 1.5, 0.5, 1.0, 1.0),
    ("Laminação Casco", "lam", 1, 0, 3.0, 8.0, 0, 0),
    ("Laminação Deck", "lam", 1, 0, 2.0, 6.0, 3.0, 2.5),
    ("Laminação Reforços", "lam", 1, 0, 1.2, 4.0, 1.5, 1.5),
    ("Laminação Carbono", "lam", 1, 0, 2.5, 6.0, 1.0, 0.8),
    ("Laminação Kevlar", "lam", 1, 0, 2.5, 6.0, 0.5, 0.6),
    ("Colocação Núcleo", "lam", 1, 0, 0.8, 2.0, 1.0, 1.0),
    ("Ensacamento Vácuo", "lam", 1, 0, 1.0, 2.0, 1.2, 1.2),
    ("Infusão Vácuo", "lam", 1, 0, 3.5, 8.0, 0.6, 0.6),
    ("Cura Forno", "cure", 1, 1, 8.0, 6.0, 0, 0),
    ("Cura Ambiente", "cure", 1, 1, 16.0, 1.0, 0.5, 0.5),
    ("Pós-Cura", "cure", 1, 1, 6.0, 4.0, 0.6, 0.6),
    ("Desmoldagem Casco", "demould", 1, 0, 0.8, 3.0, 0, 0),
    ("Desmoldagem Deck", "demould", 1, 0, 0.6, 2.0, 3.0, 2.5),
    ("Inspeção Visual Desmoldagem", "inspect", 1, 0, 0.3, 1.0, 1.5, 1.5),
    ("Rebarbagem", "trim", 1, 0, 0.7, 2.0, 0, 0),
    ("Corte Aberturas", "trim", 1, 0, 0.6, 1.5, 1.5, 1.2),
    ("Furação", "trim", 1, 0, 0.4, 1.0, 1.2, 1.0),
    ("Colagem Casco-Deck", "join", 1, 0, 1.5, 4.0, 2.5, 2.0),
    ("Fita Junção Interior", "join", 1, 0, 0.8, 2.0, 1.5, 1.2),
    ("Fita Junção Exterior", "join", 1, 0, 0.8, 2.0, 1.5, 1.2),
    ("Cura Colagem", "cure", 1, 1, 6.0, 1.0, 1.2, 1.0),
    ("Registo Qualidade", "admin", 0, 0, 0.0, 0.5, 0.6, 0.6),
    ("Inspeção Intermédia", "inspect", 1, 0, 0.4, 2.0, 1.5, 1.5),
    ("Bloqueio Qualidade", "admin", 0, 0, 0.0, 0.5, 0.2, 0.2),
    ("Reparação Estrutural", "finish", 1, 0, 2.0, 6.0, 0.3, 0.3),
    ("Desbloqueio Qualidade", "admin", 0, 0, 0.0, 4.0, 0.2, 0.2),
    ("Lixagem", "finish", 1, 0, 2.0, 5.0, 2.0, 2.0),
    ("Betumação", "finish", 1, 0, 1.0, 3.0, 1.0, 1.0),
    ("Reparação Gelcoat", "finish", 1, 0, 1.2, 3.0, 0.8, 0.8),
    ("Acabamento Exterior", "finish", 1, 0, 2.5, 6.0, 0, 0),
    ("Acabamento Interior", "finish", 1, 0, 1.5, 4.0, 1.5, 1.2),
    ("Polimento", "finish", 1, 0, 1.5, 4.0, 1.8, 1.8),
    ("Montagem Leme", "assembly", 1, 0, 0.6, 2.0, 2.5, 0.2),
    ("Montagem Sistema Leme", "assembly", 1, 0, 0.8, 2.0, 1.5, 0.1),
    ("Montagem Assento", "assembly", 1, 0, 0.5, 1.5, 2.0, 0.2),
    ("Montagem Finca-Pés", "assembly", 1, 0, 0.5, 1.5, 2.0, 0.2),
    ("Montagem Bancos", "assembly", 1, 0, 0.7, 1.5, 0.1, 2.5),
    ("Montagem Joelheira", "assembly", 1, 0, 0.5, 1.5, 0.1, 2.5),
    ("Montagem Cockpit", "assembly", 1, 0, 0.9, 2.0, 1.5, 0.8),
    ("Montagem Ferragens", "assembly", 1, 0, 0.6, 1.5, 1.5, 1.5),
    ("Pintura", "paint", 1, 0, 2.0, 5.0, 0.8, 0.8),
    ("Decoração Vinil", "paint", 1, 0, 0.5, 1.5, 1.0, 1.0),
    ("Verniz", "paint", 1, 0, 1.0, 3.0, 0.5, 0.6),
    ("Marcação Laser", "paint", 1, 1, 0.2, 1.0, 0.8, 0.8),
    ("Pesagem", "inspect", 1, 1, 0.1, 0.5, 1.5, 1.5),
    ("Teste Estanquidade", "inspect", 1, 0, 0.6, 2.0, 1.0, 1.0),
    ("Inspeção Final", "inspect", 1, 0, 0.5, 3.0, 0, 0),
    ("Limpeza Final", "pack", 1, 0, 0.4, 1.0, 1.2, 1.2),
    ("Embalagem", "pack", 1, 0, 0.5, 2.0, 0, 0),
    ("Paletização", "pack", 1, 0, 0.3, 1.0, 0.6, 0.6),
    ("Aprovação Cliente", "admin", 0, 0, 0.0, 8.0, 0.3, 0.3),
    ("Fecho OF", "admin", 0, 0, 0.0, 2.0, 2.5, 2.5),
    ("Pedido Transporte", "admin", 0, 0, 0.0, 4.0, 0.5, 0.5),
    ("Expedição", "admin", 0, 0, 0.0, 12.0, 1.5, 1.5),
    ("Faturação", "admin", 0, 0, 0.0, 6.0, 0.5, 0.5),
]


CORE_PHASES = (
    "Lançamento OF",
    "Preparação Molde Casco",
    "Gelcoat Casco",
    "Laminação Casco",
    "Cura Forno",
    "Desmoldagem Casco",
    "Rebarbagem",
    "Acabamento Exterior",
    "Inspeção Final",
    "Embalagem",
)


MIN_ROUTE, MAX_ROUTE = len(CORE_PHASES), 25


EXTRA_EVENT_PHASES = {
    "Registo Qualidade": 3.0,
    "Bloqueio Qualidade": 1.0,
    "Desbloqueio Qualidade": 1.0,
    "Aprovação Cliente": 1.0,
    "Pedido Transporte": 1.0,
}


# Where defects are caused (culprit propensity) and how often a pass is redone, by phase kind.
CULPRIT_WEIGHT = {"gel": 3.0, "lam": 4.0, "mould": 1.5, "cure": 1.2, "demould": 1.5, "join": 2.0, "trim": 1.0,
                  "finish": 1.5, "assembly": 1.0, "paint": 1.0, "cut": 0.6, "inspect": 0.1, "pack": 0.3}


REWORK_WEIGHT = {"finish": 3.0, "lam": 2.0, "gel": 2.0, "join": 1.5, "paint": 1.5, "assembly": 1.0, "trim": 0.8,
                 "mould": 0.3, "demould": 0.3, "inspect": 0.3, "pack": 0.2, "cut": 0.3}


EVALUATION_WEIGHT = {"Inspeção Final": 3.0, "Inspeção Intermédia": 2.5, "Inspeção Visual Desmoldagem": 2.0,
                     "Teste Estanquidade": 1.2, "Pesagem": 0.6, "Desmoldagem Casco": 1.2, "Desmoldagem Deck": 0.8,
                     "Acabamento Exterior": 0.8}


MINOR, MAJOR, CRITICAL = (0.70, 0.25, 0.05), (0.35, 0.45, 0.20), (0.15, 0.40, 0.45)


DEFECTS: dict[str, list[tuple[str, tuple[float, float, float]]]] = {
    "gel": [("Bolhas no gelcoat", MINOR), ("Gelcoat com poros", MINOR),
            ("Espessura de gelcoat insuficiente", MAJOR), ("Escorrido de gelcoat", MINOR)],
    "lam": [("Delaminação", CRITICAL), ("Zona seca (falta de resina)", MAJOR), ("Excesso de resina", MINOR),
            ("Rugas no tecido", MAJOR), ("Bolha de ar na laminação", MAJOR)],
    "mould": [("Marcas de molde", MINOR), ("Molde mal preparado", MAJOR)],
    "cure": [("Cura incompleta", CRITICAL), ("Sobreaquecimento", MAJOR)],
    "demould": [("Fissura na desmoldagem", CRITICAL), ("Risco na desmoldagem", MINOR)],
    "join": [("Colagem deficiente casco-deck", CRITICAL), ("Fita de junção descolada", MAJOR)],
    "trim": [("Corte irregular", MINOR), ("Furação desalinhada", MAJOR)],
    "finish": [("Riscos no acabamento", MINOR), ("Lixagem excessiva", MAJOR), ("Polimento insuficiente", MINOR)],
    "assembly": [("Leme desalinhado", MAJOR), ("Ferragens mal apertadas", MINOR), ("Assento mal posicionado", MINOR)],
    "paint": [("Pintura com escorridos", MINOR), ("Vinil mal aplicado", MINOR)],
    "cut": [("Tecido mal cortado", MINOR)],
    "inspect": [("Peso fora de tolerância", MAJOR)],
    "pack": [("Dano na embalagem", MINOR)],
}


FIRST_NAMES = ("Ana", "João", "Maria", "José", "Rui", "Sofia", "Pedro", "Inês", "Carlos", "Marta", "Paulo", "Rita",
               "Miguel", "Joana", "Luís", "Catarina", "Nuno", "Sara", "Tiago", "Filipa", "Bruno", "Helena",
               "Ricardo", "Beatriz", "André", "Teresa", "Hugo", "Cláudia", "Vítor", "Patrícia", "Diogo", "Sandra",
               "Fernando", "Lúcia", "Manuel", "Daniela", "Jorge", "Vera", "Sérgio", "Carla")


SURNAMES = ("Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Jesus",
            "Sousa", "Fernandes", "Gonçalves", "Gomes", "Lopes", "Marques", "Alves", "Almeida", "Ribeiro", "Pinto",
            "Carvalho", "Teixeira", "Moreira", "Correia", "Mendes", "Nunes", "Soares", "Vieira", "Monteiro",
            "Cardoso", "Rocha", "Neves", "Coelho", "Cruz", "Cunha", "Pires", "Ramos", "Reis", "Simões")
