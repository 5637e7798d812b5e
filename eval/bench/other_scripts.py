"""Long messages in scripts that take many tokens per character, for the long-message benchmark.

A 2,000-character message in Latin script is about 450 of the model's tokens; in Greek,
Devanagari, Cyrillic, Arabic or Chinese it is 600-1,000, and at the policy's character bound
alone the model would read 500-750 of them (docs/evaluation.md, "Policy 1.7.4"). Each message
here is a customer's report and request, written for this benchmark, repeated with a changing
order number to between 1,500 and 2,000 characters.
"""

# ruff: noqa: RUF001 - the letters are Greek, Cyrillic and Chinese on purpose

from __future__ import annotations

from engine.categories import Channel
from eval.bench.traffic_mix import MixedMessage

MAX_CHARS = 2_000

_PARAGRAPHS = {
    "hindi": (
        "नमस्ते, मैंने पिछले हफ्ते आपकी दुकान से खांसी की दवाई खरीदी थी। उसे लेने के बाद मेरे बेटे "
        "को बहुत नींद आने लगी और उसके होंठ सूज गए। हम उसे डॉक्टर के पास ले गए। कृपया बताइए कि "
        "क्या इस दवाई में कोई समस्या है। मेरा ऑर्डर नंबर {n} है। "
    ),
    "greek": (
        "Καλησπέρα σας, ξεκίνησα το νέο αντιβιοτικό που μου στείλατε την Τρίτη και από την Πέμπτη "
        "έχω έντονη ναυτία, διάρροια και ένα εξάνθημα στα χέρια. Η σύζυγός μου λέει ότι πρέπει να "
        "σταματήσω αμέσως. Η παραγγελία μου ήταν η {n} και το κουτί ήταν ανοιγμένο. "
    ),
    "chinese": (
        "我上周开始服用你们药店配送的降压药，每天早上一片。从第三天开始，我一直头晕，早上起床时眼前发黑，"
        "有两次差点摔倒。我的女儿说我脸色很差，昨天晚上我的脚踝也肿了起来。我的订单号是{n}，请帮我查一下。"
    ),
    "russian": (
        "Здравствуйте. Моя мама начала принимать новые таблетки от давления, которые вы доставили "
        "в понедельник, и со среды у неё сильное головокружение и отёк лица. Вчера мы вызывали "
        "врача. Подскажите, пожалуйста, что делать с остальными таблетками. Заказ {n}. "
    ),
    "arabic": (
        "مرحبا، اشتريت من صيدليتكم مرهما للأطفال الأسبوع الماضي، وبعد استعماله ظهر طفح جلدي "
        "أحمر على وجه ابنتي وتورمت عيناها. ذهبنا إلى الطوارئ وأعطونا دواء للحساسية. رقم الطلب {n}. "
        "أريد أن أعرف ماذا أفعل بباقي العبوة. "
    ),
}


def other_scripts() -> list[MixedMessage]:
    """One long message per script, as a chat message."""
    out = []
    for script, paragraph in _PARAGRAPHS.items():
        text = ""
        n = 0
        while len(text) < 1_500:
            text += paragraph.format(n=f"LH-{55_821 + n}")
            n += 1
        out.append(MixedMessage(f"script_{script}", text[:MAX_CHARS], Channel.CHAT))
    return out
