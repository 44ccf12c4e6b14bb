"""Invented names for the synthetic data: people, companies, teams, places.

None of them is meant to be a real person or organisation.
"""

from __future__ import annotations


def words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text``."""
    return tuple(text.split())


FIRST = words(
    "Ana Ben Chen Dara Eli Farah Goran Hana Ivo Jana Kofi Lena Marek Nia Omar Pia Quinn Rosa "
    "Sami Tove Uma Viktor Wen Ximena Yusuf Zora Aiko Bruno Carla Dmitri Esme Felix Greta Hugo "
    "Ines Jonas Kira Luca Maya Nils"
)
LAST = words(
    "Okafor Riis Santos Marsh Dahl Ortiz Novak Haddad Lindqvist Moreau Tanaka Kowalski Brandt "
    "Ferreira Nakamura Osei Petrov Quist Rahman Silva Torres Uchida Varga Weber Yilmaz Zelenko "
    "Abara Bianchi Castillo Duarte Eriksen Fontaine Gallo Horvat Iversen Jensen Kaur Laine "
    "Mendes Nyberg"
)
COMPANY = words(
    "Acme Northwind Harbor Bluefield Cobalt Granite Meridian Orchid Pioneer Quarry Redwood "
    "Summit Tidewater Umber Vantage Willow Aurora Beacon Cedar Delta Ember Falcon Glacier "
    "Helix Indigo Juniper Kestrel Lumen Mistral Nimbus"
)
INDUSTRY = words("Robotics Ferries Foods Analytics Energy Pharma Logistics Textiles Media Bank")
CITY = words("Leeds Oslo Porto Lisbon Lyon Gdansk Tampere Bilbao Ghent Aarhus Turin Cork")
MASCOT = words("Lions Sharks Falcons Wolves Herons Otters Foxes Ravens Bears Comets Pilots Eagles")
ROLES = (
    "chief executive",
    "chief financial officer",
    "chair",
    "head of sales",
    "chief technology officer",
    "general counsel",
    "head of research",
    "chief operating officer",
)
