"""Everyday words of two to four letters, in English and in French, folded as rules compare
words (lower case, no accents): what an acronym written in capitals without `=` also finds.

`UN` finds French "un", `US` "us", `ICE` "ice", `EU` "eu" (il a eu), `AI` "ai" (j'ai): a rule
for the United Nations matched every French article. `rules check` warns of such a word (see
Compiler), and of such an alias outside `case_aliases`. Acronyms that are no everyday word
(`NATO`, `FBI`, `CRS`) are folded without a warning: nothing else is written that way.
"""

from __future__ import annotations

from ..text import acronym_words, fold

ENGLISH = frozenset(
    """
am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we
act add age ago aid aim air all and any ape arc are arm art ask ate awe axe bad bag ban bar bat
bay bed bee beg bet bid big bin bit bog bow box boy bud bug bun bus but buy bye cab can cap car
cat cow cry cub cue cup cut dad dam day den dew did die dig dim dip doe dog dot dry due dug dye
ear eat egg ego elf elk end era eve ewe eye fan far fat fax fed fee few fig fin fir fit fix flu
fly foe fog for fox fry fun fur gap gas gel gem get god got gum gun gut guy gym had ham has hat
hay hen her hey hid him hip his hit hog hop hot how hub hue hug hut ice icy ill ink inn ion its
jam jar jaw jet job jog joy jug key kid kin kit lab lad lag lap law lay led leg let lid lie lip
lit log lot low mad man map mat may men met mix mob mom mop mud mug mum nap net new nil nod nor
not now nun nut oak oar oat odd off oil old one opt orb ore our out owe owl own pad pal pan pat
paw pay pea peg pet pie pig pin pit pod pop pot pro pub pun pup put rag ram ran rap rat raw ray
red rib rid rig rim rip rob rod rot row rub rug rum run rye sad sag sat saw say sea see set sew
sex she shy sin sip sir sit six ski sky sly sob sod son sow soy spa spy sub sue sum sun tab tag
tan tap tar tax tea ten the tie tin tip toe ton too top tow toy try tub tug two urn use van vat
vet via vow wag war was wax way web wed wet who why wig win wit woe wok won wow yes yet you zip
zoo
able ache acid acre aged aide airy ally also arch area army aunt auto avid away axis baby back
bail bait bake bald ball band bank bare bark barn base bath bead beam bean bear beat beef been
beer bell belt bend best bike bill bind bird bite blow blue blur boar boat body boil bold bolt
bomb bond bone book boom boot bore born boss both bowl bulk bull bump burn bury bush busy cafe
cage cake call calm came camp cane cape card care cart case cash cast cave cell chat chef chin
chip city clan clap claw clay clip club clue coal coat code coil coin cold come cone cook cool
cope copy cord core corn cost cosy coup cozy crew crop crow cube cult curb cure curl cute dame
damp dare dark dash data date dawn dead deaf deal dean dear debt deck deed deem deep deer demo
deny desk dial dice diet dine dirt disc dish dive dock does doll dome done doom door dose down
drag draw drew drip drop drug drum dual duck duel duke dull duly dumb dump dune dusk dust duty
each earn ease east easy echo edge edit else emit envy epic euro even ever evil exam exit face
fact fade fail fair fake fall fame fare farm fast fate fear feat feed feel feet fell felt fern
file fill film find fine fire firm fish fist five flag flat flaw fled flee flew flip flow foam
foil fold folk fond font food fool foot ford fore fork form fort foul four free frog from fuel
full fund fury fuse fuss gain gale game gang gate gave gaze gear gene gift girl give glad glow
glue goal goat goes gold golf gone good gown grab gram gray grew grey grid grim grin grip grow
gulf guru gust hack hail hair half hall halt hand hang hard harm hate haul have hawk head heal
heap hear heat heel held hell helm help herb herd here hero hers hide high hike hill hint hire
hold hole holy home hood hook hope horn host hour huge hull hung hunt hurt hush hype icon idea
idle idol inch info into iron isle item jail jazz jean jeep jerk joke jump june jury just keen
keep kept kick kill kind king kiss kite knee knew knit knob knot know lace lack lady laid lake
lamb lame lamp land lane last late lawn lazy lead leaf leak lean leap left lend lens less liar
lick lied life lift like limb lime limp line link lion list live load loaf loan lock loft logo
lone long look loop lord lose loss lost loud love luck lump lung lure lust made maid mail main
make male mall malt many mark mars mask mass mast mate math maze meal mean meat meet melt memo
menu mere mesh mess mice mild mile milk mill mind mine mint miss mist mode mold mole mood moon
more moss most moth move much mule must myth nail name navy near neat neck need nest news next
nice nine node none noon norm nose note noun nude oath obey odds okay once only onto open oral
oven over pace pack pact page paid pain pair pale palm pane park part pass past path peak pear
peel peer pest pick pier pile pill pine pink pint pipe plan play plea plot plug plum plus poem
poet pole poll polo pond pony pool poor pope pork port pose post pour pray prey prop pull pump
punk pure push quit quiz race rack raft rage raid rail rain ramp rang rank rare rash rate read
real rear rely rent rest rice rich ride rift ring riot rise risk road roam roar robe rock rode
role roll roof room root rope rose ruin rule rush rust safe saga sage said sail sake sale salt
same sand sang save scan scar seal seat sect seed seek seem seen self sell send sent shed ship
shoe shop shot show shut sick side sigh sign silk sing sink site size skin skip slam slap slid
slim slip slot slow snap snow soak soap soar sock sofa soft soil sold sole some song soon sore
sort soul soup sour spin spit spot spur star stay stem step stir stop such suit sung sunk sure
surf swan swap sway swim tail take tale talk tall tame tank tape task taxi team tear tech tell
tend tent term test text than that them then they thin this thus tick tide tidy tier tile till
tilt time tiny tire toad toll tomb tone took tool tore torn tour town trap tray tree trim trio
trip true tube tuck tune turn twin type ugly undo unit upon urge used user vain vary vast veil
vein vent verb very vest veto vice view vine visa void vote wade wage wait wake walk wall wand
want ward warm warn wary wash wave weak wear weed week well went were west what when whip whom
wide wife wild will wind wine wing wipe wire wise wish with woke wolf wood wool word wore work
worm worn wrap yard yarn yeah year yell your zero zone
    """.split()  # noqa: SIM905 - a word list reads better as text
)

FRENCH = frozenset(
    """
ai as au bu ca ce de du en es et eu il je la le ma me ne ni on or os ou pu sa se si su ta te tu
un va vu
age air ami ane ans art aux bac bal bas bel bus but cas ces cet cle col cou cri cru dit dix dos
dur eau ete fer feu fil fin foi fou gaz ici ils jeu job jus lac lit loi lui mai mal mer mes mis
moi mon mot mur nez nid nom nos nul oie ont pas peu pis pot pre pur que qui rat rit roi rue sac
sel ses soi sol son sud sur tas tel tes toi ton tot tri tue une via vie vin vis vol vos vue
aide aile aime aise amie ange aout arme aube auto avec avis bain banc bord bout bras brut buts
cafe camp cela cent ceux chef cher chez ciel cinq clef club coin cote coup cour cout crie cris
dame dans date deja demi dent deux dieu dire dite doit donc dont dors doux drap dure elle elus
etat etre euro face faim fait faut fete feux fier fils fine fois fond font fort fous gare gens
gros haut hier hors idee iles joie joue jour juge juin jupe laid lait lent leur lien lieu lire
lors loup lune main mais mari mars meme mere midi mine mise mode mois mort moto mots mous murs
nage neuf noir nord note nous nuit oeil oeuf onze page pain paix papa pari part pays peau pere
peur pied plan plat plus pont port pour pres pris prix puis quoi rare rien rire robe role rose
roue rues sage sain sait sale sans sauf sens sept sera seul soir soit sole sont sous suis tant
tard taux tete tien tire toit tous tout tres trop tube type vers veut vide vite voie voir voix
vole vote vous yeux zone
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def everyday_acronym(text: str) -> tuple[str, str] | None:
    """For an acronym, two to four capitals, with periods or not (UN, U.S.), that is an
    everyday word in lower case: that word, and 'English', 'French' or 'English and French'.
    None for anything else."""
    letters = acronym_words(text).rstrip()  # U.S. is searched as US
    if not (2 <= len(letters) <= 4 and letters.isalpha() and letters.isupper()):
        return None
    word = fold(letters)
    found = [name for name, words in (("English", ENGLISH), ("French", FRENCH)) if word in words]
    return (word, " and ".join(found)) if found else None
