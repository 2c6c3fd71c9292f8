using System.Globalization;
using System.Text;

namespace EventLoop.Samples.Demos;

/// <summary>
/// A real-sized episode page for the stand-in site: varied markup, the same for the same episode every time.
/// Laid out as a podcast's episode page is: a sizeable <c>&lt;head&gt;</c> (meta and preload tags, an inline
/// stylesheet, JSON-LD, an inline script), a header with the site's navigation, then the article with its
/// <c>&lt;h1&gt;</c>, the show notes, the links from the show, a transcript, related episodes, a footer and the
/// closing scripts. About one tag per 40 bytes (some 2,000 on an 80 KB page), entities, non-ASCII text, and two
/// things that fool a scan for the first <c>&lt;h1&gt;</c> that does not know HTML: an <c>&lt;h1&gt;</c> in a
/// comment and one in a script's string, both before the real one.
/// </summary>
internal static class EpisodePage
{
    /// <summary>Share of the page before the <c>&lt;h1&gt;</c>: the head, then the header and navigation.</summary>
    private const double HeadShare = 0.16, NavShare = 0.06;

    private static readonly string[] Words =
    [
        "loop", "await", "task", "socket", "buffer", "timer", "queue", "callback", "thread", "pool", "latency",
        "throughput", "kernel", "epoll", "scheduler", "future", "coroutine", "stream", "pipe", "backpressure",
        "deadline", "cancel", "scope", "python", "dotnet", "runtime", "allocation", "garbage", "collector", "tier",
        "compiler", "benchmark", "core", "cache", "syscall", "handle", "libuv", "uvloop", "asyncio", "trio",
        "really", "just", "quite", "simply", "often", "never", "always", "rather", "the", "a", "of", "to", "and",
        "in", "that", "it", "is", "was", "for", "on", "with", "as", "you", "we", "they", "this", "but", "so",
        "café", "naïve", "déjà vu", "über", "façade", "résumé",
    ];

    private static readonly string[] Sections =
    [
        "Episodes", "Guests", "Topics", "Courses", "Transcripts", "Sponsors", "Newsletter", "Live stream",
        "About", "Contact", "Merch", "Jobs", "Search",
    ];

    private static readonly string[] Speakers = ["Michael", "Guest", "Brian", "Host"];

    private static readonly string[] Entities = ["&amp;", "&mdash;", "&#8217;", "&hellip;", "&quot;", "&lt;", "&gt;", "&nbsp;"];

    /// <summary>Writes the page of <paramref name="episode"/>, about <paramref name="size"/> bytes of UTF-8, to <paramref name="html"/>.</summary>
    public static void Write(StringBuilder html, int episode, string title, int size)
    {
        var random = new PageRandom(episode);
        CultureInfo inv = CultureInfo.InvariantCulture;
        int start = html.Length;
        int Written() => html.Length - start; // chars, close enough to bytes: the non-ASCII text is a few per cent

        html.Append("<!DOCTYPE html>\n<html lang=\"en\" data-theme=\"light\">\n<head>\n<meta charset=\"utf-8\">\n")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
            .Append(inv, $"<title>{title} | Stand-in Podcast</title>\n")
            .Append(inv, $"<link rel=\"canonical\" href=\"https://podcast.example/episodes/{episode}\">\n");
        for (int i = 0; i < 6; i++)
        {
            html.Append(inv, $"<link rel=\"preload\" as=\"font\" type=\"font/woff2\" crossorigin href=\"/static/fonts/f{i}-{random.Next(1 << 20):x5}.woff2\">\n");
        }

        html.Append(inv, $"<meta property=\"og:title\" content=\"{title}\">\n<meta property=\"og:type\" content=\"article\">\n")
            .Append(inv, $"<meta name=\"description\" content=\"{Sentence(ref random, 12)}\">\n")
            .Append("<!-- the old layout's title: <h1>Stand-in Podcast</h1> -->\n<style>\n");
        int headEnd = (int)(size * HeadShare);
        while (Written() < headEnd * 0.6)
        {
            string name = Words[random.Next(40)];
            html.Append(inv, $".{name}-{random.Next(100)} > .{Words[random.Next(40)]} {{ margin: {random.Next(24)}px {random.Next(24)}px; color: #{random.Next(1 << 24):x6}; font-weight: {100 * (1 + random.Next(9))}; }}\n");
        }

        html.Append("</style>\n<script type=\"application/ld+json\">{\"@context\": \"https://schema.org\", \"@type\": \"PodcastEpisode\", ")
            .Append(inv, $"\"episodeNumber\": {episode}, \"name\": \"{title}\", \"keywords\": [");
        while (Written() < headEnd * 0.8)
        {
            html.Append(inv, $"\"{Words[random.Next(Words.Length)]}\", ");
        }

        html.Append("\"end\"]}</script>\n<script>\n  window.templates = { banner: '<h1 class=\"banner\">' + document.title + '</h1>' };\n");
        while (Written() < headEnd)
        {
            html.Append(inv, $"  window.analytics.push(['{Words[random.Next(40)]}', {random.Next(100_000)}, \"{Words[random.Next(40)]} < {Words[random.Next(40)]}\"]);\n");
        }

        html.Append("</script>\n</head>\n<body class=\"episode-page\">\n<header class=\"site-header\">\n<a class=\"logo\" href=\"/\"><img src=\"/static/logo.svg\" alt=\"Stand-in Podcast\" width=\"180\" height=\"40\"></a>\n<nav aria-label=\"main\">\n<ul class=\"menu\">\n");
        int navEnd = (int)(size * (HeadShare + NavShare));
        for (int s = 0; Written() < navEnd; s++)
        {
            string section = Sections[s % Sections.Length];
            html.Append(inv, $"<li class=\"menu-item\"><a href=\"/{section.ToLowerInvariant().Replace(' ', '-')}\">{section}</a>\n<ul class=\"submenu\">");
            for (int i = 0; i < 4; i++)
            {
                int other = 1 + random.Next(1000);
                html.Append(inv, $"<li><a href=\"/{other}\" title=\"Episode {other}\">#{other} {Words[random.Next(40)]}</a></li>");
            }

            html.Append("</ul></li>\n");
        }

        html.Append("</ul>\n</nav>\n<form class=\"search\" action=\"/search\"><input type=\"search\" name=\"q\" placeholder=\"Search episodes&hellip;\"><button type=\"submit\">Go</button></form>\n</header>\n")
            .Append("<main>\n<nav class=\"breadcrumbs\"><a href=\"/\">Home</a> &rsaquo; <a href=\"/episodes\">Episodes</a> &rsaquo; <span>")
            .Append(inv, $"#{episode}</span></nav>\n<article class=\"episode\" itemscope itemtype=\"https://schema.org/PodcastEpisode\">\n")
            .Append(inv, $"<h1 class=\"episode-title\" itemprop=\"name\">{title}</h1>\n")
            .Append(inv, $"<p class=\"meta\"><time datetime=\"2024-{1 + (episode % 12):00}-{1 + (episode % 28):00}\">recorded</time> &middot; {30 + random.Next(60)} min &middot; <a href=\"/{episode - 1}\">previous</a> &middot; <a href=\"/{episode + 1}\">next</a></p>\n")
            .Append("<div class=\"player\" data-src=\"/audio/")
            .Append(inv, $"{episode}.mp3\" data-duration=\"{1800 + random.Next(3600)}\"><button class=\"play\" aria-label=\"Play\">&#9654;</button></div>\n<section class=\"notes\">\n<h2>Show notes</h2>\n");
        for (int i = 0; i < 4; i++)
        {
            Paragraph(html, ref random, inv);
        }

        html.Append("<h2>Links from the show</h2>\n<ul class=\"links\">\n");
        for (int i = 0; i < 12; i++)
        {
            html.Append(inv, $"<li><a href=\"https://example.org/{Words[random.Next(40)]}/{random.Next(10_000)}\" rel=\"noopener\" target=\"_blank\"><strong>{Words[random.Next(40)]}</strong> {Sentence(ref random, 4)}</a></li>\n");
        }

        html.Append("</ul>\n</section>\n<section class=\"transcript\">\n<h2>Transcript</h2>\n");
        const string Tail = "</section>\n</article>\n<aside class=\"related\"><h2>Related episodes</h2><ul>\n" +
                            "<li><a href=\"/1\">Episode 1</a></li><li><a href=\"/2\">Episode 2</a></li><li><a href=\"/3\">Episode 3</a></li></ul></aside>\n</main>\n" +
                            "<footer class=\"site-footer\"><p>&copy; Stand-in Podcast &middot; <a href=\"/privacy\">Privacy</a> &middot; <a href=\"/rss\">RSS</a></p></footer>\n" +
                            "<script src=\"/static/js/player.js\" defer></script>\n<script>window.analytics.flush();</script>\n</body>\n</html>\n";
        for (int seconds = 0; Written() + Tail.Length < size; seconds += 5 + random.Next(40))
        {
            html.Append(inv, $"<p id=\"t{seconds}\"><a class=\"ts\" href=\"?t={seconds}\">{seconds / 3600:00}:{seconds / 60 % 60:00}:{seconds % 60:00}</a> <span class=\"speaker\">{Speakers[random.Next(Speakers.Length)]}</span>: ");
            html.Append(Sentence(ref random, 4 + random.Next(10)));
            html.Append(random.Next(2) == 0 ? string.Create(inv, $" <em>{Words[random.Next(Words.Length)]}</em> {Entities[random.Next(Entities.Length)]} ") : string.Create(inv, $" <strong>{Words[random.Next(40)]}</strong> "));
            if (random.Next(2) == 0)
            {
                html.Append(inv, $"<a href=\"/{1 + random.Next(500)}\">{Words[random.Next(40)]}</a> {Words[random.Next(Words.Length)]}");
            }

            html.Append(".</p>\n");
        }

        html.Append(Tail);
    }

    private static void Paragraph(StringBuilder html, ref PageRandom random, CultureInfo inv)
    {
        html.Append("<p>").Append(Sentence(ref random, 10 + random.Next(20)));
        html.Append(inv, $" {Entities[random.Next(Entities.Length)]} <a href=\"/topics/{Words[random.Next(40)]}\">{Words[random.Next(40)]}</a>, <code>{Words[random.Next(40)]}()</code> ");
        html.Append(Sentence(ref random, 8 + random.Next(12))).Append(".</p>\n");
    }

    private static string Sentence(ref PageRandom random, int words)
    {
        var sentence = new StringBuilder(words * 8);
        for (int i = 0; i < words; i++)
        {
            sentence.Append(i == 0 ? "" : " ").Append(Words[random.Next(Words.Length)]);
        }

        return sentence.ToString();
    }

    /// <summary>A tiny deterministic generator (xorshift32), seeded by the episode, so a page never changes.</summary>
    private struct PageRandom(int seed)
    {
        private uint _state = (uint)seed * 2654435761u | 1u;

        public int Next(int bound)
        {
            _state ^= _state << 13;
            _state ^= _state >> 17;
            _state ^= _state << 5;
            return (int)(_state % (uint)bound);
        }
    }
}
