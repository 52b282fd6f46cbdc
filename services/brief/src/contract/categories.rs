//! CUAD's clause categories: each a table of weighted patterns over a sentence. A sentence's
//! score is the sum of the weights of the patterns it matches (a pattern's `unless` cancels
//! it), plus one when the section heading names the category; the best sentence is reported
//! when it reaches the category's threshold.
//!
//! Patterns are written in lower case and matched against the lower-cased sentence, in which
//! "non-exclusive" is spelled "non_exclusive" so that `\bexclusive` does not match it.

use std::sync::LazyLock;

use regex::Regex;

use super::{clause_around, Sentence, Units};
use crate::Item;

/// One weighted pattern.
struct Rule {
    pattern: &'static str,
    weight: u32,
    /// A pattern that cancels this rule in the same sentence ("" for none).
    unless: &'static str,
}

const fn rule(pattern: &'static str, weight: u32) -> Rule {
    Rule {
        pattern,
        weight,
        unless: "",
    }
}

const fn rule_unless(pattern: &'static str, weight: u32, unless: &'static str) -> Rule {
    Rule {
        pattern,
        weight,
        unless,
    }
}

/// One clause category.
struct Category {
    /// CUAD's column header.
    section: &'static str,
    /// The plain reading of a found clause.
    found: &'static str,
    /// What a reader is told when none is found.
    missing: &'static str,
    rules: &'static [Rule],
    /// Words of a section heading that add one to a sentence that already scores.
    headings: &'static [&'static str],
    /// A sentence must match this to be considered ("" for any).
    require: &'static str,
    /// A sentence matching this is never this category ("" for none).
    veto: &'static str,
    threshold: u32,
}

/// Conditions that make a termination right one for cause, not for convenience.
const CAUSE: &str = r"breach|default|insolven|bankrupt|fail(?:s|ure|ed)?\s+to|\bcure|violat|change\s+(?:of|in)\s+control|force\s+majeure|if\s+(?:the\s+other|either|any|such)|in\s+the\s+event|for\s+cause|upon\s+the\s+occurrence|unable|refuse|with\s+cause|not\s+be\s+terminated|^\W*(?:\(\w+\)\s*)?if\b|\bif\b[^,]{0,80}\b(?:is|are|has|have|becomes|fails|rejects|engaged|takes)\b|end\s+of\s+life";

static CATEGORIES: &[Category] = &[
    Category {
        section: "Most Favored Nation",
        found: "Most-favoured terms: if better terms are given to others, this party is entitled to them.",
        missing: "No most-favoured-nation clause found.",
        rules: &[
            rule(r"most[- ]favou?red[- ](?:nation|customer|licensee|pricing|price|terms|basis)", 2),
            rule(r"(?:no|not)\s+less\s+favou?rable\s+than.{0,120}(?:any\s+other|third|other\s+(?:customers?|licensees?|distributors?|purchasers?|resellers?))", 2),
            rule(r"as\s+favou?rable\s+(?:as|than)\s.{0,100}(?:any\s+other|third|other\s+(?:customers?|licensees?|distributors?|purchasers?))", 2),
            rule(r"(?:lower|lowest|better|more\s+favou?rable)\s+(?:prices?|pricing|terms|rates?|royalt\w+|fees?)\s.{0,150}(?:to|with|than)\s+(?:any|another)\s+(?:other\s+|third\s+)?(?:customers?|licensees?|part(?:y|ies)|distributors?|purchasers?|resellers?|persons?|entit(?:y|ies))", 2),
            rule(r"(?:lowest|best)\s+(?:net\s+)?price|more\s+favou?rable\s+(?:terms|rates?|prices?|pricing|conditions)", 1),
            rule(r"\b(?:any\s+other|third[- ]part\w*|another|other\s+(?:customers?|licensees?|distributors?|companies|persons?))\b", 1),
        ],
        headings: &["most favo", "mfn"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Competitive Restriction Exception",
        found: "An exception or carve-out to a non-compete, exclusivity or no-solicit restriction.",
        missing: "No exception to a competitive restriction found.",
        rules: &[
            rule(r"notwithstanding|shall\s+not\s+(?:be\s+deemed\s+to\s+)?(?:prohibit|restrict|prevent|preclude|limit|apply\s+to)|(?:does|will)\s+not\s+(?:prohibit|restrict|prevent|preclude|apply\s+to)|nothing\s+(?:in\s+this|herein|contained)|with\s+the\s+exception\s+of|provided,?\s+however|(?:is|are)\s+subject\s+to|unless|except\s+(?:for|as|that|with)", 1),
            rule(r"\bcompet(?:e|es|ing|ition|itive|itor|itors)\b|\bexclusiv(?:e|ity|ely)\b|non-?solicit|\bsolicit", 1),
            rule(r"(?:ownership|own)\s+of\s+(?:less\s+than|not\s+more\s+than|up\s+to)\s.{0,40}(?:%|percent).{0,80}(?:publicly|securities|stock|shares)", 2),
        ],
        headings: &["non-compet", "noncompet", "exclusiv", "competition", "restrictive covenant", "non-solicit"],
        require: r"\bcompet(?:e|es|ing|ition|itive|itor|itors)\b|\bexclusiv(?:e|ity|ely)\b|non-?solicit|\bsolicit|restrict",
        veto: r"exclusive\s+(?:jurisdiction|venue|remedy|remedies|property|forum|of\s)|sole\s+and\s+exclusive\s+(?:remedy|property|liability)|competent|governing\s+law|confidential",
        threshold: 3,
    },
    Category {
        section: "Non-Compete",
        found: "A restriction on competing with the counterparty or operating in a business or territory.",
        missing: "No non-compete clause found.",
        rules: &[
            rule(r"\b(?:not|no|neither|nor)\b.{0,150}\b(?:compete|competes|competing|in\s+competition)\b", 2),
            rule(r"\b(?:not|no|neither|nor)\b.{0,150}\b(?:engage|participate|invest|own|operate|manage|develop|market|sell|distribute|manufacture|commerciali[sz]e|carry\s+on)\w*\b.{0,150}\b(?:competitive|competitor|competing|similar\s+to|substantially\s+similar)", 2),
            rule(r"non-?compet(?:e|ition)\b|covenant\s+not\s+to\s+compete|refrain\s+from\s+compet", 2),
            rule(r"directly\s+or\s+indirectly", 1),
        ],
        headings: &["non-compet", "noncompet", "competition", "restrictive covenant", "competing"],
        require: r"compet",
        veto: r"competent|competition\s+(?:law|authorit)|antitrust|competitive\s+(?:bid|pric|rate|position|advantage|disadvantage|harm)|not\s+subject\s+to\s+any|is\s+subject\s+to\s+any|does\s+not\s+contain|contains\s+covenants",
        threshold: 2,
    },
    Category {
        section: "Exclusivity",
        found: "An exclusive-dealing commitment (exclusive rights, requirements, or no dealing with others).",
        missing: "No exclusivity clause found.",
        rules: &[
            rule(r"\bexclusive\b(?:,?\s+(?:and\s+)?[\w-]+){0,6}?,?\s+(?:right|license|licence|distributor|distribution|supplier|supply|provider|agent|agency|reseller|dealer|basis|sales|marketing|rights|territory|partner|manufacturer|representative|sponsor|licensee)", 2),
            rule(r"(?:shall|will|may)\s+not\s+(?:\w+\s+){0,3}(?:appoint|authorize|grant|license|engage|sell\s+to|supply|purchase\s+from|enter\s+into|distribute)\s+.{0,60}(?:any\s+other|third\s+part|another|other\s+(?:distributors?|suppliers?|resellers?|agents?|licensees?|persons?|companies))", 2),
            rule(r"(?:all|one\s+hundred\s+percent|100%)\s+of\s+(?:its|their|[a-z]+['’]s)\s+(?:\w+\s+)?(?:requirements|needs|purchases)", 2),
            rule(r"\bsole\s+(?:and\s+exclusive\s+)?(?:distributor|supplier|source|provider|agent|licensee|reseller|manufacturer)", 2),
            rule(r"\b(?:not|no)\b.{0,60}\b(?:appoint|grant|licen[cs]e|authori[sz]e|enter\s+into)\w*\b.{0,100}\b(?:anyone|any\s+(?:other|third|person|entity|company)|additional|another)\b", 2),
            rule(r"\bonly\s+(?:distributor|supplier|reseller|provider|licensee|agent|source)", 2),
            rule(r"\bexclusiv(?:ely|ity)\b", 1),
            rule(r"\bgrants?\b", 1),
        ],
        headings: &["exclusiv"],
        require: "",
        veto: r"\b(?:not|no)\s+(?:\w+\s+){0,6}exclusiv|nothing\s.{0,60}exclusiv|exclusive\s+(?:jurisdiction|venue|remedy|remedies|property|forum|of\s)|sole\s+and\s+exclusive\s+(?:remedy|remedies|property|liability|obligation)|exclusively\s+(?:by|in|under)\s+(?:the\s+)?(?:laws|courts)|exclusive\s+(?:licensee|owner)\s+of\s+(?:all\s+)?(?:right|the\s+marks)",
        threshold: 2,
    },
    Category {
        section: "No-Solicit Of Customers",
        found: "A party may not solicit or take the counterparty's customers.",
        missing: "No customer no-solicit clause found.",
        rules: &[
            rule(r"\b(?:not|no|neither|nor)\b.{0,120}\bsolicit\w*\b.{0,150}\b(?:customers?|clients?|accounts?|subscribers?|merchants?|franchisees?|advertisers?|patients?)\b", 2),
            rule(r"\b(?:not|no|neither|nor)\b.{0,100}\b(?:divert|entice|induce|interfere|take\s+away)\w*\b.{0,120}\b(?:customers?|clients?|accounts?|subscribers?)\b", 2),
        ],
        headings: &["non-solicit", "solicitation"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "No-Solicit Of Employees",
        found: "A party may not solicit or hire the counterparty's employees.",
        missing: "No employee no-solicit clause found.",
        rules: &[
            rule(r"\b(?:not|no|neither|nor)\b.{0,150}\b(?:solicit|recruit|hire|induce|entice)\w*\b.{0,150}\b(?:employees?|personnel|staff|officers?)\b", 2),
            rule(r"non-?solicitation\s+of\s+(?:employees|personnel)|no[- ]hire", 2),
        ],
        headings: &["non-solicit", "solicitation", "hiring"],
        require: "",
        veto: r"disclos",
        threshold: 2,
    },
    Category {
        section: "Non-Disparagement",
        found: "A party must not disparage the counterparty.",
        missing: "No non-disparagement clause found.",
        rules: &[
            rule(r"disparag", 2),
            rule(r"(?:derogatory|defamatory|negative|adverse|unfavou?rable)\s+(?:statements?|remarks?|comments?|publicity)", 2),
        ],
        headings: &["disparag"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Termination For Convenience",
        found: "A party may terminate without cause, on notice.",
        missing: "No termination-for-convenience right found.",
        rules: &[
            rule(r"(?:may|right\s+to|can|entitled\s+to|option\s+to|elect\s+to)\s+(?:\w+\s+){0,4}?terminat\w*.{0,160}(?:for\s+convenience|without\s+cause|for\s+any\s+reason|for\s+no\s+reason|with\s+or\s+without\s+cause|in\s+its\s+sole\s+discretion|at\s+(?:its|their)\s+(?:sole\s+)?(?:discretion|convenience|option)|at\s+will)", 2),
            rule(r"(?:for\s+(?:its\s+)?convenience|without\s+cause|for\s+any\s+reason\s+or\s+(?:for\s+)?no\s+reason).{0,120}(?:may|right\s+to)\s+(?:\w+\s+){0,3}terminat", 2),
            // Termination on notice alone, with no breach or event as its condition.
            rule_unless(
                r"(?:may|right\s+to|can|entitled\s+to)\s+(?:\w+\s+){0,5}?terminat\w*\s+(?:this|the|its|such)\b.{0,250}\bnotice\b",
                2,
                CAUSE,
            ),
            rule_unless(
                r"(?:may|can)\s+(?:also\s+)?be\s+terminated\b.{0,250}\bnotice\b",
                2,
                CAUSE,
            ),
        ],
        headings: &["terminat"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Rofr/Rofo/Rofn",
        found: "A right of first refusal, first offer or first negotiation.",
        missing: "No right of first refusal, offer or negotiation found.",
        rules: &[
            rule(r"right\s+of\s+first\s+(?:refusal|offer|negotiation|purchase)|rights\s+of\s+first\s+(?:refusal|offer|negotiation)|right\s+of\s+last\s+(?:refusal|offer)", 2),
            rule(r"first\s+right\s+(?:of|to)\s+(?:refus|negotiat|offer|purchase|acquire|buy|market|distribute|license)", 2),
            rule(r"(?:first|prior)\s+(?:opportunity|option)\s+to\s+(?:purchase|acquire|negotiate|license|distribute|bid|offer|match|buy)", 2),
            rule(r"\bmatch\w*\s+(?:the|any|such)\s+(?:third[- ]party\s+)?(?:offer|proposal|bid|terms)", 1),
        ],
        headings: &["first refusal", "first offer", "first negotiation"],
        require: "",
        veto: r"not\s+subject\s+to\s+any|(?:is|are)\s+subject\s+to\s+any|none\s+of\s+the|(?:has|have)\s+not\s+(?:\w+\s+){0,3}granted|or\s+granted\s+any",
        threshold: 2,
    },
    Category {
        section: "Change Of Control",
        found: "A change of control (merger, sale of the business) requires consent or notice, or permits termination.",
        missing: "No change-of-control clause found.",
        rules: &[
            rule_unless(
                r"change\s+(?:of|in)\s+(?:the\s+)?(?:control|ownership|management)",
                2,
                r"(?:nor|not)\s+(?:shall\s+)?(?:any\s+)?change\s+(?:of|in)\s+control",
            ),
            // A merger or sale of the business that permits termination, or counts as an
            // assignment needing consent.
            rule_unless(
                r"\bmerger\b|\bmerges?\b|consolidat\w*\s+(?:with|into)|amalgamat|acquisition\s+of\s+(?:all|substantially|a\s+majority|control)|acquires?\s+(?:all|substantially|a\s+majority|control)|(?:sale|transfer|disposition)\s+of\s+(?:all\s+or\s+)?substantially\s+all|controlling\s+interest|majority\s+of\s+(?:its|the)\s+(?:voting|outstanding)",
                1,
                r"entire\s+agreement|supersede|whereas",
            ),
            rule(r"(?:may|right\s+to|entitled\s+to)\s+(?:\w+\s+){0,3}terminat|deemed\s+(?:to\s+be\s+)?an?\s+assignment|(?:constitute|treated\s+as)\s+an?\s+assignment", 1),
        ],
        headings: &["assignment", "change of control", "change in control"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Anti-Assignment",
        found: "Assigning the agreement requires the other party's consent or notice.",
        missing: "No restriction on assignment found.",
        rules: &[
            rule(r"\b(?:not|no|neither|nor)\b.{0,100}\b(?:assign|assigned|assignment|transfer|transferred|delegate|delegated)\b.{0,250}(?:without\s+(?:first\s+obtaining\s+)?(?:the\s+)?(?:prior\s+)?(?:express\s+)?(?:written\s+)?(?:consent|approval|permission|agreement)|prior\s+written\s+(?:consent|approval|notice))", 2),
            rule(r"\b(?:assign|assigned|assignment|transfer|transferred)\b.{0,250}(?:with(?:out)?\s+(?:first\s+obtaining\s+)?(?:the\s+)?(?:prior\s+)?(?:express\s+)?(?:written\s+)?(?:consent|approval)\s+of|with(?:out)?\s+(?:the\s+)?prior\s+written\s+(?:consent|approval|notice))", 2),
            rule_unless(
                r"(?:shall|may|will)\s+not\s+(?:be\s+)?(?:assign|assigned|transfer|transferred)\b|\b(?:not|non-?)\s*(?:assignable|transferable)",
                2,
                r"licen[cs]e\s+(?:granted|rights)|rights?\s+granted|sublicen",
            ),
            rule(r"\bassign", 1),
        ],
        headings: &["assignment", "assignability", "successors and assigns", "transfer"],
        require: r"assign|transfer|delegat",
        veto: r"hereby\s+(?:irrevocably\s+)?assigns?|work\s+made\s+for\s+hire|right,?\s+title\s+and\s+interest",
        threshold: 2,
    },
    Category {
        section: "Revenue/Profit Sharing",
        found: "A party shares revenue or profit (royalties, commissions or a percentage of sales).",
        missing: "No revenue or profit sharing found.",
        rules: &[
            rule(r"(?:royalt(?:y|ies)|commissions?|fees?|share|percentage|portion|payment)\b.{0,100}(?:\d+(?:\.\d+)?\s*%|percent|per\s+cent|\[\*+\]\s*%?)\s.{0,100}\b(?:net\s+sales|gross\s+(?:sales|revenues?|receipts|proceeds|margin)|revenues?|profits?|proceeds|income|receipts|sales)\b", 2),
            rule(r"(?:\d+(?:\.\d+)?\s*%|percent|per\s+cent)\s*\)?\s+(?:\([^)]*\)\s+)?of\s+(?:the\s+|all\s+|any\s+|such\s+)?(?:[a-z-]+\s+){0,2}(?:sales|revenues?|profits?|proceeds|receipts|income|billings|cash\s+flow)", 2),
            rule(r"(?:revenues?|profits?|income|losses)\b.{0,80}\b(?:shall|will)\s+be\s+(?:shared|split|divided|distributed|allocated)|share\s+(?:any|all|the)\s+(?:net\s+)?(?:revenues?|profits?|income)", 2),
            rule(r"(?:profit|revenue|income)[- ]shar|share\s+(?:of\s+|in\s+)?(?:the\s+)?(?:net\s+)?(?:profits?|revenues?|losses)|split\s+(?:the\s+)?(?:net\s+)?(?:profits?|revenues?)", 2),
            rule(r"royalt(?:y|ies)\s+(?:on|of|equal|at\s+the\s+rate|based)|\broyalt(?:y|ies)\b", 1),
        ],
        headings: &["royalt", "revenue shar", "profit shar", "commission"],
        require: "",
        veto: r"interest\s+(?:at|rate)|late\s+(?:payment|charge)|overdue|past\s+due|per\s+annum|withholding|discount\s+of",
        threshold: 2,
    },
    Category {
        section: "Price Restrictions",
        found: "A restriction on raising or lowering prices.",
        missing: "No price restriction found.",
        rules: &[
            rule(r"\b(?:not|no)\b.{0,60}\b(?:increase|raise|change|adjust|exceed)\w*\s+(?:the\s+|its\s+|any\s+|such\s+)?(?:prices?|pricing|fees?|rates?|charges?)", 2),
            rule(r"(?:prices?|fees?|rates?|pricing)\s+(?:shall|will)\s+(?:remain|be)\s+(?:fixed|firm|constant|unchanged)", 2),
            rule(r"(?:price|fee|rate)\s+increases?.{0,80}(?:not\s+(?:to\s+)?exceed|limited\s+to|no\s+more\s+than|capped|at\s+most|more\s+than\s+once)", 2),
            rule(r"(?:shall|will)\s+not\s+(?:sell|offer|advertise|resell).{0,60}(?:below|less\s+than|lower\s+than|above|more\s+than|higher\s+than).{0,30}price", 2),
            rule(r"(?:minimum|maximum)\s+(?:resale\s+|retail\s+)?prices?", 1),
            rule(r"(?:increase|raise|change)\w*\s.{0,60}(?:only\s+once|once\s+(?:per|a|each)\s+(?:year|calendar|contract)|not\s+more\s+than\s+once)|only\s+be\s+subject\s+to\s+(?:an?\s+)?increase|(?:not|no)\s+(?:to\s+)?(?:increase|exceed|rise)\w*\s+by\s+more\s+than|(?:fees?|prices?|rates?)\s+shall\s+remain\s+the\s+same", 2),
        ],
        headings: &["pric"],
        require: "",
        veto: r"\btax|insurance",
        threshold: 2,
    },
    Category {
        section: "Minimum Commitment",
        found: "A minimum purchase, order or payment commitment.",
        missing: "No minimum commitment found.",
        rules: &[
            rule(r"minimum\s+(?:annual\s+|monthly\s+|quarterly\s+|yearly\s+)?(?:purchase|order|quantit|volume|commitment|amount|number|units?|sales|royalt|fees?|payments?|guarantee|requirement|revenue|spend|target|performance|inventory)", 2),
            rule(r"(?:purchase|order|buy|sell|acquire)\w*\s+(?:and\s+\w+\s+)?(?:at\s+least|not\s+less\s+than|no\s+less\s+than|a\s+minimum\s+of)\s", 2),
            rule(r"(?:guaranteed|committed)\s+(?:minimum|quantit|volume|purchase|payment|fee|royalt)|take[- ]or[- ]pay|annual\s+minimum|firm\s+purchase\s+order", 2),
            rule(r"(?:annual|quarterly|monthly|yearly)\s+(?:sales?\s+)?(?:targets?|quotas?|milestones?)", 2),
            rule(r"(?:order|purchase|buy|sell|sales|sale)\w*\b.{0,120}(?:at\s+least|not\s+less\s+than|no\s+less\s+than|minimum)", 1),
            rule(r"\bunits\b|\$|%|percent|dollars|quantit|tons|barrels|gallons", 1),
        ],
        headings: &["minimum"],
        require: "",
        veto: r"insurance|notice|minimum\s+(?:term|age|wage)|liabilit",
        threshold: 2,
    },
    Category {
        section: "Volume Restriction",
        found: "A volume threshold: use beyond a limit needs consent or costs more.",
        missing: "No volume restriction found.",
        rules: &[
            rule_unless(
                r"(?:in\s+excess\s+of|exceed\w*|more\s+than|greater\s+than|above)\s.{0,60}(?:units?|quantit\w*|volume|capacity|forecast\w*|usage|users?|transactions|hours|calls|copies|seats|licenses|tons|barrels|gallons|orders?|servers?)",
                1,
                r"liabilit|damages|interest|taxes",
            ),
            rule(r"additional\s+(?:fees?|charges?)|surcharge|excess\s+(?:fees?|charges?|usage)|\bconsent\b|\bapprov|not\s+(?:be\s+)?(?:obligated|required)|sole\s+discretion", 1),
            rule(r"up\s+to\s+(?:a\s+)?maximum|(?:maximum|cap)\s+(?:quantit\w*|volume|number|amount)\s+of|not\s+to\s+exceed\s.{0,30}(?:units?|quantit|volume)", 2),
        ],
        headings: &["volume", "capacity", "quantit"],
        require: "",
        veto: r"insurance|liabilit|shares|stock|expenses|bonus|severance|revenues?|chargebacks?|indemnif",
        threshold: 2,
    },
    Category {
        section: "Ip Ownership Assignment",
        found: "Intellectual property created by one party becomes the counterparty's.",
        missing: "No assignment of intellectual property ownership found.",
        rules: &[
            rule(r"hereby\s+(?:irrevocably\s+)?(?:assigns?|transfers?|conveys?).{0,150}(?:right,?\s+title|intellectual\s+property|inventions?|copyrights?|patents?|work\s+product|deliverables|improvements?|rights)", 2),
            rule(r"works?\s+made\s+for\s+hire", 2),
            rule(r"(?:inventions?|improvements?|developments?|deliverables|work\s+product|modifications?|derivative\s+works?|enhancements?|results|intellectual\s+property|discoveries|know-how|materials|works)\b.{0,150}(?:shall|will)\s+(?:be|become|vest)\s+(?:in\s+|the\s+)?(?:sole\s+and\s+exclusive\s+|exclusive\s+|sole\s+)?(?:property|owned|vested)", 2),
            rule(r"(?:shall|will)\s+(?:solely\s+|exclusively\s+)?(?:own|be\s+the\s+(?:sole\s+(?:and\s+exclusive\s+)?)?owner\s+of)\s+(?:all\s+)?(?:right|intellectual|inventions?|improvements?|deliverables|work|results|modifications|developments|data)", 2),
            rule(r"(?:agrees?|shall|will)\s+(?:to\s+)?assign\s+.{0,40}to\s.{0,80}(?:all|any|its|his|her|the\s+entire)\s.{0,40}(?:right|interest|title)", 2),
        ],
        headings: &["ownership", "intellectual property", "inventions", "work product"],
        require: "",
        veto: r"(?:shall|may)\s+not\s+assign\s+this|this\s+agreement\s+(?:may|shall)\s+(?:not\s+)?be\s+assigned|jointly",
        threshold: 2,
    },
    Category {
        section: "Joint Ip Ownership",
        found: "Intellectual property owned jointly by the parties.",
        missing: "No joint ownership of intellectual property found.",
        rules: &[
            rule(r"jointly\s+(?:and\s+equally\s+)?(?:own|owned|held)|owned\s+(?:jointly|in\s+common|equally)|joint\s+(?:ownership|owners?|inventions?|intellectual\s+property|patents?|technology|work\s+product|improvements?|developments?|property)\b|co-?own", 2),
            rule(r"undivided\s+(?:one-half\s+|equal\s+)?interest", 1),
        ],
        headings: &["ownership", "intellectual property", "inventions"],
        require: "",
        veto: r"joint\s+venture\s+(?:agreement|company)",
        threshold: 2,
    },
    Category {
        section: "License Grant",
        found: "A licence granted by one party to the other.",
        missing: "No licence grant found.",
        rules: &[
            rule_unless(
                r"\bgrants?\b.{0,180}\b(?:licen[cs]e|sub-?licen[cs]e|right\s+to\s+(?:use|reproduce|distribute|market|sell|make|display))",
                2,
                r"(?:shall|will|may)\s+not\s+grant|no\s+(?:other\s+)?(?:right|licen[cs]e)s?\s+(?:is|are|shall\s+be|will\s+be)\s+granted|no\s+implied\s+licen|except\s+as\s+(?:expressly\s+)?(?:set\s+forth|provided)|nothing\s+(?:in\s+this|herein|contained)",
            ),
            rule(r"hereby\s+licen[cs]es|(?:is|are)\s+hereby\s+licen[cs]ed|hereby\s+grants?", 1),
        ],
        headings: &["licen", "grant"],
        require: r"licen[cs]|right\s+to\s+use",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Non-Transferable License",
        found: "The licence may not be transferred, assigned or sublicensed without consent.",
        missing: "No limit on transferring a licence found.",
        rules: &[
            rule(r"non-?\s?transferable|not\s+transferable|non-?\s?assignable|not\s+assignable|non-?sub-?licen[cs]able|without\s+the\s+right\s+to\s+(?:sub-?licen[cs]e|transfer|assign)", 1),
            rule(r"licen[cs]", 1),
            rule(r"(?:licensee|[a-z]+)\s+(?:shall|may)\s+not\s+(?:\w+\s+){0,2}(?:assign|transfer|sub-?licen[cs]e)\w*.{0,100}(?:licen[cs]e|rights?\s+granted)", 2),
        ],
        headings: &["licen", "grant"],
        require: r"transfer|assign|sub-?licen",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Affiliate License-Licensor",
        found: "The licence includes rights of the licensor's affiliates.",
        missing: "No licence from the licensor's affiliates found.",
        rules: &[
            rule(r"(?:licensor|[a-z]+)\s+(?:and|on\s+behalf\s+of)\s+(?:its|their)\s+affiliates?\b.{0,80}(?:hereby\s+)?grants?", 2),
            rule(r"grants?.{0,250}(?:owned|controlled|licensable|held)\s+by\s+(?:licensor|[a-z]+)\s+(?:or|and)\s+(?:any\s+of\s+)?(?:its|their)\s+affiliates", 2),
            rule(r"(?:licensor|[a-z]+)['’]s\s+(?:or\s+its\s+)?affiliates?['’]?\s+(?:intellectual\s+property|patents?|technology|trademarks?|marks|know-how)", 1),
            rule(r"\bgrants?\b.{0,180}licen[cs]e", 1),
        ],
        headings: &[],
        require: r"licen[cs]",
        veto: "",
        threshold: 3,
    },
    Category {
        section: "Affiliate License-Licensee",
        found: "The licence extends to the licensee's affiliates.",
        missing: "No licence to the licensee's affiliates found.",
        rules: &[
            rule(r"grants?\s+(?:to\s+)?(?:the\s+)?[a-z]+(?:\s+[a-z]+)?\s+and\s+(?:its|their)\s+(?:affiliates|subsidiaries)", 2),
            rule(r"licen[cs]e.{0,150}\bto\s+(?:the\s+)?(?:licensee|[a-z]+)\s+and\s+(?:its|their)\s+(?:affiliates|subsidiaries)", 2),
            rule(r"(?:sub-?licen[cs]e|extend)\w*.{0,60}\bto\s+(?:any\s+of\s+)?(?:its|their)\s+(?:affiliates|subsidiaries)", 2),
            rule(r"(?:licensee|[a-z]+)\s+and\s+(?:its|their)\s+(?:affiliates|subsidiaries)\s+(?:may|shall\s+have\s+the\s+right\s+to)\s+(?:use|sell|distribute|make|market|reproduce)", 2),
            rule(r"sub-?licen[cs]\w*\b.{0,150}\b(?:affiliates?|subsidiar(?:y|ies))\b", 2),
            rule(r"(?:appoint|enter\s+into\s+agreements\s+with)\s+(?:its|their)\s+(?:affiliates|subsidiaries)", 2),
        ],
        headings: &[],
        require: r"licen[cs]|right|grant",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Unlimited/All-You-Can-Eat-License",
        found: "An unlimited-use (enterprise or all-you-can-eat) licence.",
        missing: "No unlimited-use licence found.",
        rules: &[
            rule(r"unlimited\s+(?:number\s+of\s+)?(?:users?|use|copies|licen[cs]es|access|installations|seats|devices|quantit)", 2),
            rule(r"enterprise[- ]wide|all[- ]you[- ]can[- ]eat|without\s+(?:any\s+)?(?:limitation|limit|restriction)\s+(?:on|as\s+to)\s+(?:the\s+)?(?:number|quantity)", 2),
        ],
        headings: &[],
        require: r"licen[cs]|right\s+to\s+use|use",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Irrevocable Or Perpetual License",
        found: "A licence that is irrevocable or perpetual.",
        missing: "No irrevocable or perpetual licence found.",
        rules: &[
            rule(r"(?:perpetual|irrevocable)\b.{0,120}licen[cs]e", 2),
            rule(r"licen[cs]e.{0,100}\b(?:perpetual|irrevocable|in\s+perpetuity)", 2),
            rule(r"\bgrants?\b", 1),
        ],
        headings: &[],
        require: "",
        veto: r"(?:terminat|revoc)\w*\s+(?:of|upon)\s+(?:the|this)\s+licen",
        threshold: 2,
    },
    Category {
        section: "Source Code Escrow",
        found: "Source code is deposited in escrow for release on defined events.",
        missing: "No source-code escrow found.",
        rules: &[
            rule(r"escrow.{0,150}source\s+code|source\s+code.{0,150}escrow", 2),
            rule(r"escrow\s+(?:agent|agreement)", 1),
            rule(r"(?:deposit|release)\w*.{0,80}source\s+code", 1),
        ],
        headings: &["escrow"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Post-Termination Services",
        found: "Obligations continue after termination or expiry (transition, wind-down, sell-off, payment).",
        missing: "No post-termination obligations found.",
        rules: &[
            rule(r"(?:upon|after|following|on|subsequent\s+to)\s+(?:the\s+)?(?:any\s+)?(?:effective\s+date\s+of\s+)?(?:such\s+)?(?:termination|expiration|expiry|cancellation)\b.{0,200}\b(?:shall|will|must|may)\s+(?:\w+\s+){0,3}(?:continue\s+to|provide|deliver|pay|purchase|sell|complete|transfer|cooperate|assist|fulfill|fill|ship|perform|have\s+the\s+right\s+to\s+(?:sell|continue|purchase|use|complete))", 2),
            rule(r"(?:sell[- ]off|wind[- ]down|transition(?:al)?)\s+(?:period|services|assistance|plan)|last[- ]time\s+buy|run[- ]off", 2),
            rule(r"surviv\w*.{0,60}(?:termination|expiration|expiry)", 1),
        ],
        headings: &["effect of termination", "consequences of termination", "post-termination", "obligations upon termination", "rights upon termination"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Audit Rights",
        found: "A party may audit or inspect the counterparty's books, records or premises.",
        missing: "No audit right found.",
        rules: &[
            rule(r"\baudit\w*\b.{0,150}(?:books|records|accounts|facilit|premises|operations|compliance|statements|reports?|procedures)", 2),
            rule(r"(?:books|records|accounts).{0,150}\baudit", 2),
            rule(r"(?:inspect|examin)\w*.{0,100}(?:books|records|accounts|facilit|premises|plants?|sites?)", 2),
            rule(r"right\s+to\s+audit|access\s+to\s+(?:its\s+|the\s+|all\s+)?(?:books|records|facilit|premises)", 2),
        ],
        headings: &["audit", "inspection", "records"],
        require: "",
        veto: r"audited\s+(?:financial|consolidated|annual|balance)|independent\s+(?:registered\s+)?(?:public\s+)?accountants?\s+(?:report|opinion)|sarbanes",
        threshold: 2,
    },
    Category {
        section: "Uncapped Liability",
        found: "Some liability is excluded from the cap (e.g. indemnity, confidentiality, gross negligence).",
        missing: "No uncapped liability found.",
        rules: &[
            rule(r"in\s+no\s+event|(?:not|neither|nor)\s+.{0,40}\bbe\s+liable|limitations?\s+(?:of|on)\s+liability|liability.{0,80}(?:exceed|limited)|consequential|(?:aggregate|total|maximum|cumulative)\s+liability|(?:foregoing|this|these|above)\s+limitations?|exclusions?\s+of\s+(?:liability|damages)|shall\s+not\s+limit|will\s+not\s+limit", 1),
            rule(r"\bexcept\s+(?:for|with\s+respect\s+to|in\s+(?:respect|the\s+case|connection\s+with)|to\s+the\s+extent|as\s+to|with\s+regard\s+to)|excluding|other\s+than|shall\s+not\s+(?:apply|limit)|does\s+not\s+(?:apply|limit)|not\s+be\s+limited|nothing\s+in\s+this.{0,60}(?:limit|restrict|exclude)|will\s+not\s+(?:apply|limit)|\bsave\s+(?:for|in|the)", 1),
            rule(r"indemnif|confidential|gross\s+negligence|wil(?:l)?ful|intentional|fraud|infring|misappropriat|death|personal\s+injury|bodily\s+injury|sections?\s+\d", 1),
            rule(r"unlimited\s+liability|liability\s+shall\s+be\s+unlimited|no\s+limit(?:ation)?\s+(?:on|of)\s+(?:its\s+)?liability", 3),
        ],
        headings: &["limitation of liability", "limitation on liability", "liability"],
        require: r"liab|damages",
        veto: "",
        threshold: 3,
    },
    Category {
        section: "Cap On Liability",
        found: "Liability is capped or limited (amount cap, excluded damages, or a time limit for claims).",
        missing: "No cap on liability found.",
        rules: &[
            rule(r"(?:in\s+no\s+event|under\s+no\s+circumstances?).{0,200}(?:liab\w+|damages)", 2),
            rule(r"(?:not|no)\s+(?:be\s+)?(?:liable|liability|responsible).{0,150}(?:indirect|special|incidental|consequential|punitive|exemplary|lost\s+profits|loss\s+of\s+(?:profits?|revenue|business))", 2),
            rule(r"(?:aggregate|total|maximum|entire|cumulative)\s+liability.{0,200}(?:exceed|limited|in\s+excess|greater\s+than|capped)", 2),
            rule(r"liability.{0,120}(?:shall|will)\s+(?:not\s+exceed|be\s+limited\s+to|in\s+no\s+event\s+exceed)", 2),
            rule(r"(?:action|claim|suit|proceeding)s?.{0,120}(?:brought|commenced|filed|asserted|instituted).{0,80}(?:more\s+than|after|later\s+than)\s.{0,30}(?:years?|months?)", 2),
            rule(r"exclud\w+.{0,60}liability\s+for.{0,60}(?:consequential|indirect)", 2),
            rule(r"\b(?:neither|no|not|nor)\b.{0,100}\b(?:liable|liability|responsible)\b.{0,200}(?:indirect|special|incidental|consequential|punitive|exemplary|lost\s+profits|loss\s+of\s+(?:profits?|revenue|business))", 2),
            rule(r"waive\w*.{0,80}(?:consequential|indirect|punitive|special)\s+(?:damages|loss)|only\s+be\s+liable.{0,80}direct\s+damages|sole\s+and\s+exclusive\s+(?:remedy|liability)", 2),
        ],
        headings: &["limitation of liability", "limitation on liability", "liability"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Liquidated Damages",
        found: "Liquidated damages or a termination fee are payable.",
        missing: "No liquidated damages or termination fee found.",
        rules: &[
            rule(r"liquidated\s+damages", 2),
            rule(r"(?:early\s+)?termination\s+(?:fee|charge|payment|penalty)|break[- ]?up\s+fee|cancellation\s+(?:fee|charge)", 2),
            rule(r"(?:as\s+a|by\s+way\s+of)\s+penalty|not\s+(?:as\s+)?a\s+penalty", 1),
        ],
        headings: &["liquidated"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Warranty Duration",
        found: "A warranty lasts for a stated period.",
        missing: "No warranty period found.",
        rules: &[
            rule(r"warranty\s+period|period\s+of\s+(?:the\s+)?warranty", 2),
            rule(r"(?:[a-z]+|\d+)\s*(?:\(\d+\)\s*)?(?:days?|months?|years?)\s+(?:from|after|following|of)\s+(?:the\s+)?(?:date\s+of\s+)?(?:delivery|shipment|installation|acceptance|purchase|manufacture|receipt|sale|invoice)", 1),
            rule(r"for\s+(?:a\s+period\s+of\s+)?(?:[a-z]+|\d+)\s*(?:\(\d+\)\s*)?(?:days?|months?|years?)", 1),
            rule(r"warrant(?:s|y|ies)\b", 1),
        ],
        headings: &["warrant"],
        require: r"warrant|guarantee",
        veto: r"represents\s+and\s+warrants\s+that\s+it\s+(?:is|has)\s+(?:duly|a\s+corporation)",
        threshold: 3,
    },
    Category {
        section: "Insurance",
        found: "A party must maintain insurance.",
        missing: "No insurance requirement found.",
        rules: &[
            rule(r"(?:maintain|carry|obtain|procure|keep|purchase)\w*.{0,120}insurance", 2),
            rule(r"insurance.{0,120}(?:coverage|policy|policies|limits?|amount|\$|in\s+force|in\s+effect)", 1),
            rule(r"additional(?:ly)?\s+insureds?|certificates?\s+of\s+insurance|insurance\s+certificate", 2),
        ],
        headings: &["insurance"],
        require: r"insur",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Covenant Not To Sue",
        found: "A party may not sue or contest the counterparty's rights (e.g. the validity of its IP).",
        missing: "No covenant not to sue found.",
        rules: &[
            rule(r"(?:covenants?|agrees?)\s+not\s+to\s+sue", 2),
            rule(r"covenants?\s+not\s+to\s+sue", 1),
            rule(r"\b(?:not|no)\b.{0,60}\bclaim\w*\s+(?:to\s+)?(?:any\s+)?(?:ownership|right,?\s+title)", 2),
            rule(r"\b(?:not|never|no)\b.{0,100}\b(?:contest|challenge|dispute|attack|oppose|impugn)\w*\b.{0,100}(?:validity|ownership|enforceability|title|rights?\s+(?:in|to)|registration|trademarks?|marks|patents?)", 2),
            rule_unless(
                r"\b(?:not|no)\b.{0,60}\b(?:bring|commence|institute|initiate|file|assert|maintain)\w*\s.{0,60}(?:claims?|actions?|suits?|proceedings?).{0,100}(?:infring|patents?|trademarks?|intellectual\s+property|validity)",
                2,
                r"(?:more\s+than|after|later\s+than)\s.{0,30}(?:years?|months?)",
            ),
        ],
        headings: &["covenant not to sue"],
        require: "",
        veto: "",
        threshold: 2,
    },
    Category {
        section: "Third Party Beneficiary",
        found: "A non-party is a beneficiary that can enforce terms of the contract.",
        missing: "No third-party beneficiary found (or they are excluded).",
        rules: &[
            rule_unless(
                r"third[- ]party\s+(?:\w+\s+)?beneficiar|intended\s+(?:third[- ]party\s+)?beneficiar",
                2,
                r"\b(?:no|not|nothing|none|neither|nor)\b",
            ),
        ],
        headings: &[],
        require: "",
        veto: "",
        threshold: 2,
    },
];

/// A clause says what a party shall, will, may or must do; headings and lists of defined
/// terms do not.
static OPERATIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:shall|will|may|must|agrees?|undertakes?|covenants?|is|are|be|has|have|can|cannot|acknowledges?|grants?|waives?)\b")
        .expect("static regex")
});

/// A category with its patterns compiled.
struct Compiled {
    category: &'static Category,
    rules: Vec<(Regex, u32, Option<Regex>)>,
    headings: &'static [&'static str],
    require: Option<Regex>,
    veto: Option<Regex>,
}

fn compile(pattern: &str) -> Option<Regex> {
    (!pattern.is_empty()).then(|| Regex::new(pattern).expect("static regex"))
}

static COMPILED: LazyLock<Vec<Compiled>> = LazyLock::new(|| {
    CATEGORIES
        .iter()
        .map(|category| Compiled {
            category,
            rules: category
                .rules
                .iter()
                .map(|r| {
                    (
                        Regex::new(r.pattern).expect("static regex"),
                        r.weight,
                        compile(r.unless),
                    )
                })
                .collect(),
            headings: category.headings,
            require: compile(category.require),
            veto: compile(category.veto),
        })
        .collect()
});

/// The lower-cased sentence prepared for matching: the same length as `lower`, with the
/// negated forms that would otherwise match a positive pattern joined into one word.
fn matchable(lower: &str) -> String {
    lower
        .replace("non-exclusive", "non_exclusive")
        .replace("non- exclusive", "non__exclusive")
        .replace("nonexclusive", "non_xclusive")
}

pub(crate) fn items(units: &Units<'_>) -> Vec<Item> {
    let prepared: Vec<String> = units
        .sentences
        .iter()
        .map(|s| matchable(&s.lower))
        .collect();
    COMPILED
        .iter()
        .map(|compiled| best_item(units, &prepared, compiled))
        .collect()
}

fn best_item(units: &Units<'_>, prepared: &[String], compiled: &Compiled) -> Item {
    let category = compiled.category;
    let mut best: Option<(u32, &Sentence<'_>, usize)> = None;
    for (sentence, text) in units.sentences.iter().zip(prepared) {
        if sentence.is_heading
            || sentence.is_contents
            || sentence.is_recital
            || !OPERATIVE.is_match(text)
            || compiled.require.as_ref().is_some_and(|r| !r.is_match(text))
            || compiled.veto.as_ref().is_some_and(|v| v.is_match(text))
        {
            continue;
        }
        let mut score = 0;
        let mut first_at: Option<usize> = None;
        for (pattern, weight, unless) in &compiled.rules {
            let Some(m) = pattern.find(text) else {
                continue;
            };
            if unless.as_ref().is_some_and(|u| u.is_match(text)) {
                continue;
            }
            score += weight;
            if first_at.is_none() && *weight >= 2 {
                first_at = Some(m.start());
            }
        }
        if score == 0 {
            continue;
        }
        if compiled
            .headings
            .iter()
            .any(|h| sentence.heading.contains(h))
        {
            score += 1;
        }
        if best.as_ref().is_none_or(|(s, ..)| score > *s) {
            best = Some((score, sentence, first_at.unwrap_or(0)));
        }
    }
    match best {
        Some((score, sentence, at)) if score >= category.threshold => {
            let passage = units.passages[sentence.passage].text;
            let at = (sentence.range.start + at).min(sentence.range.end);
            let range = clause_around(passage, &sentence.range, at);
            units.found(
                category.section,
                sentence,
                range,
                category.found.to_string(),
            )
        }
        _ => Item::not_found(category.section, category.missing.to_string()),
    }
}
