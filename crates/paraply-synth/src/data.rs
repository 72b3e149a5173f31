//! Fixed word lists: regions and their municipalities, names, streets and the phrases the
//! generated resources use. Order matters: indices feed the seeded generator, so adding an
//! entry changes the output for every seed (as any change to the generator does).

/// A municipality: name, a three-digit postal-code prefix, and its population in thousands
/// (approximate; it weights where patients live).
pub(crate) struct MunicipalityData {
    pub(crate) name: &'static str,
    pub(crate) postal_prefix: u16,
    pub(crate) population: u64,
}

pub(crate) struct RegionData {
    pub(crate) name: &'static str,
    /// The hospital whose clinics the region's patients meet.
    pub(crate) hospital: &'static str,
    pub(crate) municipalities: &'static [MunicipalityData],
}

const fn m(name: &'static str, postal_prefix: u16, population: u64) -> MunicipalityData {
    MunicipalityData {
        name,
        postal_prefix,
        population,
    }
}

/// Twenty of the 21 regions. Gotland is left out on purpose: Region Gotland is one
/// organisation that is both region and municipality, which would make a SIP's two
/// huvudmän the same Organization.
pub(crate) const REGIONS: &[RegionData] = &[
    RegionData {
        name: "Region Stockholm",
        hospital: "Karolinska Universitetssjukhuset",
        municipalities: &[
            m("Stockholm", 114, 990),
            m("Solna", 169, 85),
            m("Sundbyberg", 172, 55),
            m("Huddinge", 141, 115),
            m("Nacka", 131, 110),
            m("Södertälje", 151, 100),
            m("Järfälla", 175, 85),
            m("Täby", 183, 75),
        ],
    },
    RegionData {
        name: "Region Uppsala",
        hospital: "Akademiska sjukhuset",
        municipalities: &[
            m("Uppsala", 753, 240),
            m("Enköping", 745, 46),
            m("Östhammar", 742, 22),
            m("Tierp", 815, 21),
        ],
    },
    RegionData {
        name: "Region Sörmland",
        hospital: "Mälarsjukhuset",
        municipalities: &[
            m("Eskilstuna", 632, 107),
            m("Nyköping", 611, 58),
            m("Katrineholm", 641, 35),
            m("Strängnäs", 645, 38),
        ],
    },
    RegionData {
        name: "Region Östergötland",
        hospital: "Universitetssjukhuset i Linköping",
        municipalities: &[
            m("Linköping", 582, 165),
            m("Norrköping", 602, 145),
            m("Motala", 591, 44),
            m("Mjölby", 595, 28),
        ],
    },
    RegionData {
        name: "Region Jönköpings län",
        hospital: "Länssjukhuset Ryhov",
        municipalities: &[
            m("Jönköping", 553, 145),
            m("Värnamo", 331, 35),
            m("Nässjö", 571, 31),
            m("Vetlanda", 574, 27),
        ],
    },
    RegionData {
        name: "Region Kronoberg",
        hospital: "Centrallasarettet Växjö",
        municipalities: &[
            m("Växjö", 352, 96),
            m("Ljungby", 341, 28),
            m("Älmhult", 343, 18),
        ],
    },
    RegionData {
        name: "Region Kalmar län",
        hospital: "Länssjukhuset i Kalmar",
        municipalities: &[
            m("Kalmar", 392, 71),
            m("Västervik", 593, 36),
            m("Oskarshamn", 572, 27),
        ],
    },
    RegionData {
        name: "Region Blekinge",
        hospital: "Blekingesjukhuset",
        municipalities: &[
            m("Karlskrona", 371, 66),
            m("Ronneby", 372, 29),
            m("Karlshamn", 374, 32),
        ],
    },
    RegionData {
        name: "Region Skåne",
        hospital: "Skånes universitetssjukhus",
        municipalities: &[
            m("Malmö", 211, 360),
            m("Lund", 222, 130),
            m("Helsingborg", 252, 150),
            m("Kristianstad", 291, 87),
            m("Landskrona", 261, 46),
            m("Trelleborg", 231, 47),
        ],
    },
    RegionData {
        name: "Region Halland",
        hospital: "Hallands sjukhus",
        municipalities: &[
            m("Halmstad", 302, 105),
            m("Varberg", 432, 67),
            m("Kungsbacka", 434, 85),
            m("Falkenberg", 311, 47),
        ],
    },
    RegionData {
        name: "Västra Götalandsregionen",
        hospital: "Sahlgrenska Universitetssjukhuset",
        municipalities: &[
            m("Göteborg", 411, 600),
            m("Borås", 503, 115),
            m("Trollhättan", 461, 60),
            m("Skövde", 541, 57),
            m("Uddevalla", 451, 57),
            m("Mölndal", 431, 70),
        ],
    },
    RegionData {
        name: "Region Värmland",
        hospital: "Centralsjukhuset i Karlstad",
        municipalities: &[
            m("Karlstad", 652, 95),
            m("Arvika", 671, 26),
            m("Kristinehamn", 681, 24),
        ],
    },
    RegionData {
        name: "Region Örebro län",
        hospital: "Universitetssjukhuset Örebro",
        municipalities: &[
            m("Örebro", 702, 160),
            m("Karlskoga", 691, 30),
            m("Kumla", 692, 22),
        ],
    },
    RegionData {
        name: "Region Västmanland",
        hospital: "Västmanlands sjukhus Västerås",
        municipalities: &[
            m("Västerås", 722, 160),
            m("Köping", 731, 26),
            m("Sala", 733, 23),
        ],
    },
    RegionData {
        name: "Region Dalarna",
        hospital: "Falu lasarett",
        municipalities: &[
            m("Falun", 791, 60),
            m("Borlänge", 784, 53),
            m("Mora", 792, 20),
            m("Ludvika", 771, 26),
        ],
    },
    RegionData {
        name: "Region Gävleborg",
        hospital: "Gävle sjukhus",
        municipalities: &[
            m("Gävle", 802, 104),
            m("Sandviken", 811, 40),
            m("Hudiksvall", 824, 38),
            m("Söderhamn", 826, 25),
        ],
    },
    RegionData {
        name: "Region Västernorrland",
        hospital: "Sundsvalls sjukhus",
        municipalities: &[
            m("Sundsvall", 852, 100),
            m("Örnsköldsvik", 891, 56),
            m("Härnösand", 871, 25),
        ],
    },
    RegionData {
        name: "Region Jämtland Härjedalen",
        hospital: "Östersunds sjukhus",
        municipalities: &[
            m("Östersund", 831, 64),
            m("Krokom", 835, 15),
            m("Härjedalen", 842, 10),
        ],
    },
    RegionData {
        name: "Region Västerbotten",
        hospital: "Norrlands universitetssjukhus",
        municipalities: &[
            m("Umeå", 903, 130),
            m("Skellefteå", 931, 74),
            m("Lycksele", 921, 12),
        ],
    },
    RegionData {
        name: "Region Norrbotten",
        hospital: "Sunderby sjukhus",
        municipalities: &[
            m("Luleå", 972, 80),
            m("Piteå", 941, 42),
            m("Kiruna", 981, 22),
            m("Boden", 961, 28),
        ],
    },
];

pub(crate) const FEMALE_NAMES: &[&str] = &[
    "Anna",
    "Eva",
    "Maria",
    "Karin",
    "Kristina",
    "Lena",
    "Sara",
    "Emma",
    "Kerstin",
    "Ingrid",
    "Marie",
    "Malin",
    "Birgitta",
    "Jenny",
    "Inger",
    "Ulla",
    "Linnea",
    "Elin",
    "Ida",
    "Margareta",
    "Elsa",
    "Astrid",
    "Maja",
    "Signe",
    "Gunnel",
    "Britt",
    "Sofia",
    "Hanna",
    "Agneta",
    "Anneli",
];

pub(crate) const MALE_NAMES: &[&str] = &[
    "Lars", "Karl", "Anders", "Johan", "Per", "Erik", "Nils", "Mikael", "Jan", "Lennart", "Peter",
    "Hans", "Olof", "Gunnar", "Sven", "Fredrik", "Bengt", "Bo", "Daniel", "Göran", "Åke", "Stig",
    "Oskar", "William", "Lucas", "Hugo", "Elias", "Axel", "Leo", "Magnus",
];

pub(crate) const FAMILY_NAMES: &[&str] = &[
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "Eriksson",
    "Larsson",
    "Olsson",
    "Persson",
    "Svensson",
    "Gustafsson",
    "Pettersson",
    "Jonsson",
    "Jansson",
    "Hansson",
    "Bengtsson",
    "Jönsson",
    "Lindberg",
    "Jakobsson",
    "Magnusson",
    "Olofsson",
    "Lindström",
    "Lindqvist",
    "Lindgren",
    "Berg",
    "Axelsson",
    "Bergström",
    "Lundberg",
    "Lind",
    "Lundgren",
    "Lundqvist",
    "Mattsson",
    "Berglund",
    "Fredriksson",
    "Sandberg",
    "Henriksson",
    "Forsberg",
    "Sjöberg",
    "Wallin",
    "Engström",
    "Eklund",
    "Danielsson",
    "Lundin",
    "Håkansson",
    "Björk",
    "Bergman",
    "Gunnarsson",
    "Holm",
    "Wikström",
    "Samuelsson",
    "Isaksson",
    "Fransson",
    "Bergqvist",
    "Nyström",
    "Holmberg",
    "Arvidsson",
    "Löfgren",
    "Söderberg",
    "Nyberg",
    "Blomqvist",
    "Claesson",
    "Nordström",
    "Mårtensson",
    "Lundström",
    "Ali",
    "Mohammed",
    "Viklund",
    "Björklund",
    "Eliasson",
    "Pålsson",
    "Berggren",
];

pub(crate) const STREETS: &[&str] = &[
    "Storgatan",
    "Kyrkogatan",
    "Skolgatan",
    "Drottninggatan",
    "Kungsgatan",
    "Parkvägen",
    "Björkvägen",
    "Ängsvägen",
    "Sjövägen",
    "Tallvägen",
    "Granvägen",
    "Industrigatan",
    "Järnvägsgatan",
    "Nygatan",
    "Västra vägen",
    "Östra Långgatan",
    "Hagagatan",
    "Ekvägen",
    "Lärkvägen",
    "Skogsvägen",
    "Bäckvägen",
    "Villavägen",
    "Fabriksgatan",
    "Trädgårdsgatan",
];

/// Professions of the synthetic staff: title in PractitionerRole.code.text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profession {
    Lakare,
    Sjukskoterska,
    Fysioterapeut,
    Arbetsterapeut,
    Kurator,
    Underskoterska,
    Bistandshandlaggare,
}

impl Profession {
    pub(crate) fn title(self) -> &'static str {
        match self {
            Profession::Lakare => "Läkare",
            Profession::Sjukskoterska => "Sjuksköterska",
            Profession::Fysioterapeut => "Fysioterapeut",
            Profession::Arbetsterapeut => "Arbetsterapeut",
            Profession::Kurator => "Kurator",
            Profession::Underskoterska => "Undersköterska",
            Profession::Bistandshandlaggare => "Biståndshandläggare",
        }
    }
}

/// Goals in the patient's own words (the överenskommelse's "what matters to me").
pub(crate) const GOALS: &[&str] = &[
    "Kunna gå till affären själv igen",
    "Sova bättre på nätterna",
    "Slippa åka in akut till sjukhuset",
    "Klara trappan hemma utan hjälp",
    "Träffa barnbarnen oftare",
    "Veta vem jag ska ringa när något händer",
    "Kunna laga min egen mat",
    "Gå en promenad varje dag",
    "Känna mig trygg hemma",
    "Ha mindre ont i ryggen",
    "Komma tillbaka till jobbet på halvtid",
    "Förstå vad alla mina mediciner är till för",
    "Orka vara med i kören igen",
    "Slippa berätta samma sak för alla nya jag träffar",
    "Kunna bo kvar i mitt hus",
    "Få hjälp med duschen två gånger i veckan",
    "Klara skolan med stöd från en assistent",
    "Kunna åka till sommarstugan i juli",
];

/// Plan types (besides SIP) with the Swedish title and whether a municipality writes them.
pub(crate) const LINKED_PLANS: &[(&str, &str, bool)] = &[
    ("VP", "Vårdplan", false),
    ("RP", "Rehabiliteringsplan", false),
    ("SPU", "Samordnad plan vid utskrivning", false),
    ("HP", "Habiliteringsplan", false),
    ("GP", "Genomförandeplan", true),
    ("SVP", "Min vårdplan", false),
    ("SPLPTLRV", "Samordnad vårdplan enligt LPT/LRV", false),
];

/// What region units do for a patient (Task descriptions).
pub(crate) const REGION_TASKS: &[&str] = &[
    "Läkemedelsgenomgång",
    "Uppföljning av blodtryck",
    "Fysioterapeutisk bedömning av gångförmåga",
    "Bedömning av hjälpmedel i hemmet",
    "Provtagning inför återbesök",
    "Samtal med kurator",
    "Uppföljning av diabetes",
    "Remiss till minnesmottagningen",
];

/// What municipality units do for a patient.
pub(crate) const KOMMUN_TASKS: &[&str] = &[
    "Hemtjänst morgon och kväll",
    "Trygghetslarm",
    "Matleverans fem dagar i veckan",
    "Hjälp med dusch två gånger i veckan",
    "Hemsjukvård: såromläggning",
    "Dagverksamhet tre dagar i veckan",
    "Bostadsanpassning av badrummet",
];

/// What the patient does themself.
pub(crate) const PATIENT_TASKS: &[&str] = &[
    "Väga mig varje måndag och skriva upp vikten",
    "Gå en promenad på trettio minuter om dagen",
    "Göra mina övningar från fysioterapeuten",
    "Ta blodtrycket hemma två gånger i veckan",
    "Skriva ner frågor inför nästa besök",
];

pub(crate) const APPOINTMENT_TOPICS: &[&str] = &[
    "Uppföljning av patientkontraktet",
    "Återbesök hos fast vårdkontakt",
    "Läkarbesök för läkemedelsgenomgång",
    "Telefonuppföljning",
    "Hembesök av sjuksköterska",
    "Besök hos fysioterapeut",
];

pub(crate) const PATIENT_MESSAGES: &[&str] = &[
    "Hej! Gäller min tid på torsdag fortfarande?",
    "Jag har fått mer ont sedan i helgen, kan någon ringa mig?",
    "Tack för samtalet i dag, det kändes bra.",
    "Kan jag flytta min tid till eftermiddagen i stället?",
];

pub(crate) const STAFF_MESSAGES: &[&str] = &[
    "Hej! Din tid är bokad. Välkommen!",
    "Vi ringer dig i morgon förmiddag.",
    "Kom ihåg att ta med din läkemedelslista till besöket.",
    "Vi har skickat en kallelse till SIP-mötet.",
];

pub(crate) const REQUEST_OTHER_TIME: &[&str] = &[
    "Kan vi ta en tid efter klockan tio i stället?",
    "Den dagen kan jag inte, min dotter kan bara följa med på fredagar.",
    "Jag vill hellre ha ett telefonsamtal.",
];
