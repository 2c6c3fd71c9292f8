using System.Text;

namespace EventLoop.Samples.Demos;

/// <summary>
/// Finds a page's first <c>&lt;h1&gt;</c> as the page's text arrives, piece by piece, and keeps only that element:
/// the scraper feeds it each decoded read and stops when <see cref="Feed"/> says the element is closed, so the
/// rest of the page is never decoded or parsed. It knows as much HTML as that takes (after the tokenizer in the
/// HTML standard, much reduced): comments and <c>&lt;!...&gt;</c> declarations, quoted attribute values (a
/// <c>&gt;</c> inside one does not end the tag), and the elements whose content is text, not markup (script,
/// style, title, textarea, ...), so an <c>&lt;h1&gt;</c> in a comment or in a script's string is not taken for
/// the page's. Every state survives the end of a piece: a tag, a comment or the <c>&lt;/h1&gt;</c> itself may be
/// split across reads anywhere. The element's content is turned into its text by <see cref="Title"/>.
/// </summary>
internal sealed class FirstH1Scanner
{
    /// <summary>A title longer than this is cut here (a page that never closes its h1 must not grow a big string).</summary>
    public const int MaxTitleChars = 16 * 1024;

    private static readonly string[] RawTextElements = ["script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes", "noscript"];

    private enum State
    {
        Data,         // text: looking for '<'
        TagOpen,      // just after '<'
        TagName,      // in a start tag's name (_name collects it)
        EndTagName,   // in an end tag (skipped)
        InTag,        // after a start tag's name: attributes, up to '>'
        Quoted,       // in a quoted attribute value (_quote is the quote)
        Declaration,  // after "<!": a comment if "--" follows, else a declaration up to '>'
        Comment,      // in "<!-- ... -->" (_dashes counts the '-' just seen)
        RawText,      // in script/style/...: looking for "</" + the element's name (_match counts what matched)
        Heading,      // in the h1: content collected until "</h1" (_match counts what matched)
        Done,
    }

    private readonly StringBuilder _title = new();
    private readonly char[] _name = new char[8];
    private State _state;
    private int _nameLength, _match, _dashes;
    private char _quote;
    private string? _rawText;

    /// <summary>The h1's content was all seen (<c>&lt;/h1&gt;</c> arrived).</summary>
    public bool Found => _state == State.Done;

    /// <summary>An h1 start tag was seen (its content may still be arriving).</summary>
    public bool InHeading => _state is State.Heading or State.Done;

    /// <summary>Scans the next piece of the page; true once the h1 is closed (later pieces are not needed).</summary>
    public bool Feed(ReadOnlySpan<char> text)
    {
        int i = 0;
        while (i < text.Length)
        {
            switch (_state)
            {
                case State.Data:
                    {
                        int lt = text[i..].IndexOf('<');
                        if (lt < 0)
                        {
                            return false;
                        }

                        i += lt + 1;
                        _state = State.TagOpen;
                        break;
                    }

                case State.TagOpen:
                    {
                        char c = text[i];
                        if (char.IsAsciiLetter(c))
                        {
                            _nameLength = 0;
                            _state = State.TagName;
                            break; // the letter is read again as the name's first
                        }

                        i++;
                        _state = c switch { '/' => State.EndTagName, '!' => State.Declaration, _ => State.Data };
                        _dashes = 0;
                        break;
                    }

                case State.TagName:
                    {
                        char c = text[i];
                        if (IsTagEnd(c))
                        {
                            _state = State.InTag; // not consumed: InTag sees the '>' or the space
                            break;
                        }

                        if (_nameLength < _name.Length)
                        {
                            _name[_nameLength] = char.ToLowerInvariant(c);
                        }

                        _nameLength++;
                        i++;
                        break;
                    }

                case State.EndTagName:
                    {
                        int gt = text[i..].IndexOf('>');
                        if (gt < 0)
                        {
                            return false;
                        }

                        i += gt + 1;
                        _state = State.Data;
                        break;
                    }

                case State.InTag:
                    {
                        int stop = text[i..].IndexOfAny('>', '"', '\'');
                        if (stop < 0)
                        {
                            return false;
                        }

                        i += stop;
                        char c = text[i++];
                        if (c != '>')
                        {
                            _quote = c;
                            _state = State.Quoted;
                            break;
                        }

                        StartTagEnded();
                        break;
                    }

                case State.Quoted:
                    {
                        int end = text[i..].IndexOf(_quote);
                        if (end < 0)
                        {
                            return false;
                        }

                        i += end + 1;
                        _state = State.InTag;
                        break;
                    }

                case State.Declaration:
                    {
                        // "<!--" opens a comment; any other "<!..." (a doctype, a CDATA-like thing) ends at '>'.
                        char c = text[i];
                        if (c == '-' && _dashes < 2)
                        {
                            _dashes++;
                            i++;
                            if (_dashes == 2)
                            {
                                _dashes = 0;
                                _state = State.Comment;
                            }

                            break;
                        }

                        _dashes = 0;
                        _state = State.EndTagName; // skip to '>'
                        break;
                    }

                case State.Comment:
                    {
                        char c = text[i++];
                        if (c == '>' && _dashes >= 2)
                        {
                            _state = State.Data;
                        }
                        else
                        {
                            _dashes = c == '-' ? _dashes + 1 : 0;
                        }

                        break;
                    }

                case State.RawText:
                    i = ScanForEndTag(text, i, _rawText!, collect: false);
                    break;

                case State.Heading:
                    i = ScanForEndTag(text, i, "h1", collect: true);
                    if (_state == State.Done)
                    {
                        return true;
                    }

                    break;

                default:
                    return true;
            }
        }

        return _state == State.Done;
    }

    /// <summary>
    /// The h1's text (entities decoded, inner tags dropped, trimmed), or null when the page had no h1 or an empty
    /// one. Content with no markup and no entity is the text as it is; anything else goes to AngleSharp as the
    /// fragment <c>&lt;h1&gt;...&lt;/h1&gt;</c> alone, so the page's HTML rules apply to it but nothing else is parsed.
    /// </summary>
    public string? Title(AngleSharp.Html.Parser.HtmlParser parser)
    {
        if (!InHeading)
        {
            return null;
        }

        string content = _title.ToString();
        string text;
        if (content.AsSpan().IndexOfAny("<&\r\0") < 0)
        {
            text = content.Trim();
        }
        else
        {
            using var document = parser.ParseDocument("<h1>" + content + "</h1>");
            text = document.QuerySelector("h1")?.TextContent.Trim() ?? "";
        }

        return text.Length == 0 ? null : text;
    }

    private static bool IsTagEnd(char c) => c is '>' or '/' or ' ' or '\t' or '\n' or '\r' or '\f';

    private void StartTagEnded()
    {
        ReadOnlySpan<char> name = _name.AsSpan(0, Math.Min(_nameLength, _name.Length));
        _state = State.Data;
        if (_nameLength == 2 && name.SequenceEqual("h1"))
        {
            _state = State.Heading;
            _match = 0;
            return;
        }

        if (_nameLength <= _name.Length)
        {
            foreach (string element in RawTextElements)
            {
                if (name.SequenceEqual(element))
                {
                    _rawText = element;
                    _match = 0;
                    _state = State.RawText;
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Looks for <c>&lt;/name</c> followed by a tag end, case-insensitively, from <paramref name="i"/>; a partial match at
    /// the end of the piece is remembered in <see cref="_match"/> (and its characters held back from the title
    /// until it is known whether they were the end tag). Returns where scanning stopped.
    /// </summary>
    private int ScanForEndTag(ReadOnlySpan<char> text, int i, string name, bool collect)
    {
        // _match: 0 nothing, 1 '<' seen, 2 "</", 2 + k the name's first k chars, 2 + name.Length the whole name.
        while (i < text.Length)
        {
            if (_match == 0)
            {
                int lt = text[i..].IndexOf('<');
                int upTo = lt < 0 ? text.Length : i + lt;
                if (collect)
                {
                    Collect(text[i..upTo]);
                }

                if (lt < 0)
                {
                    return text.Length;
                }

                i = upTo + 1;
                _match = 1;
                continue;
            }

            char c = text[i];
            bool matches = _match == 1 ? c == '/'
                : _match < 2 + name.Length ? char.ToLowerInvariant(c) == name[_match - 2]
                : IsTagEnd(c);
            if (!matches)
            {
                if (collect)
                {
                    Collect("</".AsSpan(0, Math.Min(_match, 2)));
                    Collect(name.AsSpan(0, Math.Max(0, _match - 2)));
                }

                _match = 0;
                continue; // c is looked at again, as content (it may be the next '<')
            }

            if (_match == 2 + name.Length)
            {
                // "</name" and a tag end: the element is over. Its end tag is skipped like any other.
                _match = 0;
                _state = collect ? State.Done : State.EndTagName;
                return i;
            }

            _match++;
            i++;
        }

        return i;
    }

    private void Collect(ReadOnlySpan<char> content)
    {
        int room = MaxTitleChars - _title.Length;
        if (room > 0)
        {
            _title.Append(content[..Math.Min(room, content.Length)]);
        }
    }
}
