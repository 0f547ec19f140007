// The language selector. The server starts the page in its language (zimage/guards/page_language.py):
// the address's ?lang=, else the cookie set here, else the browser's languages. A pick is kept
// in the cookie, and the page loads again in the new language; where the browser refuses the
// cookie (some cross-site frames), the address carries the pick instead.
(() => {
  const COOKIE = "zimage-language";
  const shown = () => (document.documentElement.lang.toLowerCase().startsWith("zh") ? "zh-CN" : "en");

  window.zimageLanguage = {
    current: shown,
    choose(language) {
      if (language === shown()) return;
      const secure = location.protocol === "https:" ? "; Secure" : "";
      document.cookie = `${COOKIE}=${language}; Path=/; Max-Age=31536000; SameSite=Lax${secure}`;
      const kept = document.cookie.split("; ").includes(`${COOKIE}=${language}`);
      const address = new URL(location.href);
      if (kept && !address.searchParams.has("lang")) {
        location.reload();
        return;
      }
      address.searchParams.set("lang", language);
      location.replace(address);
    },
  };
})();
