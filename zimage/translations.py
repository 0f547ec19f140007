"""Everything the page says, in English and Simplified Chinese: plain data, no Gradio.

Each entry is a pair (English, Simplified Chinese) under a key. The page shows the static ones
through Gradio's `I18n` (zimage/page/language.py), so the browser switches them in place; text made
per request (history captions, messages) is formatted here with `words()` in the visitor's
language. Error messages of the core (zimage/tools/checks.py, ...) stay English: scripts get the
same text.
"""

from __future__ import annotations

from collections.abc import Iterable

ENGLISH = "en"
CHINESE = "zh-CN"
LANGUAGES = (ENGLISH, CHINESE)
# The names on the page's language selector, each in its own language.
LANGUAGE_NAMES = {ENGLISH: "English", CHINESE: "简体中文"}
# The visitor's pick of a language: a cookie, set only when they pick one on the page, and the
# page address's `?lang=` (where a browser refuses the cookie, or for a page that embeds the Space).
LANGUAGE_COOKIE = "zimage-language"
LANGUAGE_PARAMETER = "lang"

PAGE_TEXT: dict[str, tuple[str, str]] = {
    # -- header and tabs
    "header.tagline": (
        "Text-to-image and image editing with Z-Image Turbo.",
        "用 Z-Image Turbo 以文生图、编辑图像。",
    ),
    "tab.generate": ("Text to image", "文生图"),
    "tab.edit": ("Edit", "编辑图像"),
    "tab.privacy": ("Privacy and your data", "隐私与您的数据"),
    # -- controls both tabs share
    "controls.seed": ("Seed", "种子"),
    "controls.random_seed": ("Random seed", "随机种子"),
    "controls.steps": ("Steps", "步数"),
    "controls.advanced": ("Advanced settings", "高级设置"),
    "controls.stop": ("Stop", "停止"),
    "controls.seed_used": ("Seed used", "所用种子"),
    "controls.examples": ("Examples", "示例"),
    "adapters.title": ("Style adapters (LoRA)", "风格适配器（LoRA）"),
    "adapters.note": (
        "Pick up to two: click a picture, or choose by name. Strength 0 leaves one out.",
        "最多选两个：点击图片或按名称选择。强度为 0 即不使用。",
    ),
    "adapters.gallery": ("Adapters", "适配器"),
    "adapters.first": ("Adapter", "适配器"),
    "adapters.second": ("Second adapter", "第二个适配器"),
    "adapters.scale": ("Strength", "强度"),
    "adapters.triggers": ("Add trigger words", "加入触发词"),
    # -- text to image
    "generate.prompt": ("Prompt", "提示词"),
    "generate.prompt_placeholder": (
        "Describe the image you want; text in quotes is written into it. Ctrl+Enter generates.",
        "描述您想要的图像，引号里的文字会写进图中。按 Ctrl+Enter 生成。",
    ),
    "generate.size_category": ("Size category", "尺寸档位"),
    "generate.resolution": ("Resolution (width x height)", "分辨率（宽 x 高）"),
    "generate.images": ("Images", "图像数量"),
    "generate.shift": ("Time shift", "时间偏移"),
    "generate.run": ("Generate", "生成"),
    "generate.result": ("Result", "结果"),
    # -- edit
    "edit.image": ("Image to edit (paint the area to change)", "要编辑的图像（涂抹要修改的区域）"),
    "edit.instruction": ("Instruction", "修改说明"),
    "edit.instruction_placeholder": (
        "Say what to change, e.g. 'make it a snowy evening'. Ctrl+Enter edits.",
        "说明要修改什么，例如“改成下雪的傍晚”。按 Ctrl+Enter 开始编辑。",
    ),
    "edit.strength": ("Strength (how much may change)", "强度（允许改变多少）"),
    "edit.run": ("Edit", "编辑"),
    "edit.before_after": ("Before / after", "编辑前 / 编辑后"),
    "edit.method_used": ("Method used", "所用方法"),
    # -- the prompt enhancer (both tabs)
    "enhance.run": ("Enhance prompt", "优化提示词"),
    "enhance.undo": ("Undo enhance", "撤销优化"),
    "enhance.before_run": ("Enhance before generating", "生成前先优化提示词"),
    # -- the privacy notice and "your data"
    "privacy.notice": ("Privacy notice", "隐私声明"),
    "privacy.opt_out": ("Keep my requests out of the usage log", "不要把我的请求记入使用日志"),
    "privacy.got_it": ("Got it", "知道了"),
    "privacy.to_your_data": ("Full policy and your data", "完整政策与您的数据"),
    "privacy.your_data": ("## Your data", "## 您的数据"),
    "privacy.correction": (
        "Correction does not apply here: you never enter personal details, and each row only "
        "describes a request your browser made.",
        "这里不涉及更正：您从不输入个人信息，每一行只描述您的浏览器发出的一个请求。",
    ),
    "privacy.show": ("Show my data", "查看我的数据"),
    "privacy.download": ("Download my data (JSON)", "下载我的数据（JSON）"),
    "privacy.delete": ("Delete my data", "删除我的数据"),
    "privacy.confirm_question": (
        "Delete every usage row and image linked to this browser? This cannot be undone.",
        "删除与此浏览器关联的全部使用记录和图像？此操作无法撤销。",
    ),
    "privacy.confirm": ("Yes, delete everything", "是的，全部删除"),
    "privacy.cancel": ("Cancel", "取消"),
    "privacy.shown": ("Data linked to this browser", "与此浏览器关联的数据"),
    # -- the visitor's images
    "history.title": ("Your images", "您的图像"),
    "history.delete": ("Delete my images now", "立即删除我的图像"),
}

# Page text with values known when the page is built (settings, the engine).
TEMPLATES: dict[str, tuple[str, str]] = {
    "history.note": (
        "Kept in this server's memory for {lifetime}, then deleted. Only this browser sees "
        "them. Click one to reuse its settings.",
        "在本服务器内存中保留 {lifetime}，随后删除。只有此浏览器能看到。点击一张即可复用它的设置。",
    ),
    "edit.note": (
        "Z-Image-Edit weights are not published, so edits run on the Turbo weights: "
        "**{methods}**. Paint over the part to change, or leave the image unpainted to change "
        "all of it.",
        "Z-Image-Edit 的权重尚未发布，因此编辑使用 Turbo 权重：**{methods}**。"
        "涂抹要修改的部分；不涂抹则修改整张图像。",
    ),
    # The edit methods: in English the engine's own words (`Engine.edit_methods`).
    "edit.methods.img2img": (
        "{methods}",
        "无蒙版时整图重绘（img2img），有涂抹蒙版时局部重绘（inpaint）",
    ),
    "edit.methods.omni": (
        "{methods}",
        "无蒙版时用以图像为条件的模型（omni），有涂抹蒙版时局部重绘（inpaint）",
    ),
    "edit.methods.none": ("{methods}", "无"),
    # The engine line: in English the engine's own description.
    "engine.preview": (
        "**{description}**",
        "**预览引擎：随机权重的微型 Z-Image，所以图像只是噪点；界面和完整的代码路径都是真实的。**",
    ),
    "engine.unavailable": ("**Not available:** {reason}", "**不可用**：{reason}"),
    "engine.running": ("Running {description}.", "正在运行 {description}。"),
    # The privacy notice (zimage/privacy/policy.py puts it together).
    "banner.updated": ("**The privacy policy was updated.** ", "**隐私政策已更新**。"),
    "banner.logged": (
        "a usage log: time, settings, duration, outcome, browser and OS family, and a "
        "daily-salted hash of your IP address (never the address itself)",
        "一份使用日志：时间、设置、耗时、结果、浏览器和操作系统类别，以及每日换盐的 IP 地址哈希"
        "（从不保存地址本身）",
    ),
    "banner.prompts_logged": (
        ", plus your prompts; images are never logged",
        "，以及您的提示词；图像从不记录",
    ),
    "banner.prompts_not_logged": (
        "; prompts and images are not logged",
        "；提示词和图像不会记录",
    ),
    "banner.kept": (
        "**Privacy:** this demo keeps {logged}. Log rows are deleted after {retention} (only "
        "daily counts remain); you can opt out.",
        "**隐私**：本演示保存{logged}。日志记录在 {retention}后删除（只保留每日计数）；"
        "您可以选择退出。",
    ),
    "banner.no_log": (
        "**Privacy:** this demo keeps no usage log.",
        "**隐私**：本演示不保存使用日志。",
    ),
    "banner.body": (
        "{lead_in}{kept} Generated images are deleted from the server after {lifetime}. Not "
        "for children under 13.\n\nFull policy and your data: the *Privacy and your data* tab "
        "· policy version {version}",
        "{lead_in}{kept}生成的图像在 {lifetime}后从服务器删除。不面向 13 岁以下儿童。\n\n"
        "完整政策与您的数据：见“隐私与您的数据”标签页 · 政策版本 {version}",
    ),
    # Made per request, in the visitor's language.
    "method.text-to-image": ("text-to-image", "文生图"),
    "history.caption": (
        "{method} · seed {seed} · deleted in {left}",
        "{method} · 种子 {seed} · {left} 后删除",
    ),
    "message.deleted": (
        "Deleted {rows} usage rows and {images} images linked to this browser.",
        "已删除与此浏览器关联的 {rows} 条使用记录和 {images} 张图像。",
    ),
    "message.image_gone": ("That image has already been deleted.", "这张图像已被删除。"),
}

UNITS: dict[str, tuple[tuple[str, str], str]] = {
    # unit: ((English singular, English plural), Chinese)
    "second": (("second", "seconds"), "秒"),
    "minute": (("minute", "minutes"), "分钟"),
    "day": (("day", "days"), "天"),
}

# Example prompts; Z-Image writes text in quotes into the image, in either language.
EXAMPLE_PROMPTS: dict[str, list[str]] = {
    ENGLISH: [
        "A lighthouse on a basalt cliff at dusk, warm window light, long exposure sea",
        'A hand-painted wooden sign above a tea house door that reads "茶馆" in bold brush '
        'calligraphy, a smaller line below it reading "OPEN DAILY", warm lantern light',
        'A minimalist concert poster: the title "NIGHT MARKET" in large white letters, the '
        'subtitle "夜市" below it, paper lanterns on a deep blue background',
        "Close-up of a ceramic teapot with a blue glaze, soft studio light, shallow depth of field",
    ],
    CHINESE: [
        "黄昏时分玄武岩悬崖上的灯塔，窗口透出温暖的灯光，长曝光的海面",
        "茶馆门楣上的一块手绘木招牌，用粗犷的毛笔书法写着“茶馆”，下面一行小字写着“OPEN DAILY”，"
        "温暖的灯笼光",
        "一张极简风格的音乐会海报：白色大字标题“NIGHT MARKET”，下方副标题“夜市”，"
        "深蓝色背景上点缀着纸灯笼",
        "蓝釉陶瓷茶壶特写，柔和的影棚灯光，浅景深",
    ],
}
# Edit examples: (sample image in examples/, instruction).
EXAMPLE_EDITS: dict[str, list[tuple[str, str]]] = {
    ENGLISH: [
        ("house.png", "Turn the scene into a snowy winter evening"),
        ("still_life.png", "Make it a watercolour painting"),
    ],
    CHINESE: [
        ("house.png", "把场景变成下雪的冬日傍晚"),
        ("still_life.png", "把它变成一幅水彩画"),
    ],
}


def words(key: str, language: str, **values: object) -> str:
    """The text of `key` (page text or template) in `language`, with `values` filled in."""
    english, chinese = PAGE_TEXT.get(key) or TEMPLATES[key]
    text = chinese if language == CHINESE else english
    return text.format(**values) if values else text


def method_name(method: str, language: str) -> str:
    """How an image was made, in `language`; the edit methods keep their names (img2img, ...)."""
    key = f"method.{method}"
    return words(key, language) if key in TEMPLATES else method


def duration(amount: float, unit: str, language: str) -> str:
    """'10 minutes', '1 day', '10 分钟'."""
    (singular, plural), chinese = UNITS[unit]
    if language == CHINESE:
        return f"{amount:g} {chinese}"
    return f"{amount:g} {singular if amount == 1 else plural}"


def lifetime(seconds: int, language: str) -> str:
    """An output lifetime in whole minutes where it is one, else in seconds."""
    if seconds % 60 == 0:
        return duration(seconds // 60, "minute", language)
    return duration(seconds, "second", language)


def ours(tag: str) -> str | None:
    """The page language for a browser language tag: zh-* -> zh-CN, en-* -> en, else None."""
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    return {"zh": CHINESE, "en": ENGLISH}.get(primary)


def page_language(picks: Iterable[str | None], accept_language: str) -> str:
    """The language of the page: the first valid pick (the page address's `lang`, then the
    language cookie), else the first of the browser's languages that the page speaks, else
    English."""
    for pick in picks:
        if pick in LANGUAGES:
            return pick
    for tag in accepted_languages(accept_language):
        language = ours(tag)
        if language is not None:
            return language
    return ENGLISH


def accepted_languages(header: str) -> list[str]:
    """The language tags of an Accept-Language header, most preferred first."""
    weighted = []
    for position, part in enumerate(header.split(",")):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        if parameters.strip().startswith("q="):
            try:
                quality = float(parameters.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]
