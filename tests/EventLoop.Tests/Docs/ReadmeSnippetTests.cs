using System.Collections.Immutable;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace EventLoop.Tests.Docs;

/// <summary>
/// Every <c>```csharp</c> block of the README and of the packages' readmes compiles as pasted into a new console app
/// (<c>dotnet new console</c>: top-level statements, implicit usings, nullable on) that references the two packages.
/// A block that is deliberately a fragment is preceded by the line <c>&lt;!-- not compiled: why --&gt;</c>.
/// </summary>
public sealed partial class ReadmeSnippetTests
{
    private const string SkipMarker = "<!-- not compiled";

    /// <summary>The SDK's implicit usings for a console app (Microsoft.NET.Sdk, ImplicitUsings=enable).</summary>
    private const string ImplicitUsings =
        "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
        "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";

    [GeneratedRegex(@"^```csharp[ \t]*\r?\n(?<code>.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();

    private static string RepositoryRoot()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EventLoop.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no EventLoop.sln above {AppContext.BaseDirectory}");
    }

    public static TheoryData<string, int> Snippets()
    {
        var data = new TheoryData<string, int>();
        foreach (string file in ReadmeFiles)
        {
            string text = File.ReadAllText(Path.Combine(RepositoryRoot(), file));
            int index = 0;
            foreach (Match block in CSharpBlock().Matches(text))
            {
                index++;
                string before = text[..block.Index].TrimEnd();
                if (!before.EndsWith("-->", StringComparison.Ordinal) || !before[before.LastIndexOf('\n')..].Contains(SkipMarker))
                {
                    data.Add(file, index);
                }
            }
        }

        return data;
    }

    private static readonly string[] ReadmeFiles = ["README.md", "src/EventLoop/README.md", "src/EventLoop.Libuv/README.md"];

    [Fact]
    public void The_readmes_have_csharp_blocks_to_check()
    {
        // Guards the regex: a README whose blocks stopped matching would make the theory below check nothing.
        Assert.True(Snippets().Count() >= 6, $"found {Snippets().Count()} csharp blocks");
    }

    [Theory]
    [MemberData(nameof(Snippets))]
    public void A_readme_csharp_block_compiles_as_pasted_into_a_console_app(string file, int block)
    {
        string text = File.ReadAllText(Path.Combine(RepositoryRoot(), file));
        string code = CSharpBlock().Matches(text)[block - 1].Groups["code"].Value;
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var compilation = CSharpCompilation.Create(
            "Snippet",
            [CSharpSyntaxTree.ParseText(ImplicitUsings, parse), CSharpSyntaxTree.ParseText(code, parse, path: $"{file} block {block}")],
            References(),
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var output = new MemoryStream();
        ImmutableArray<Diagnostic> diagnostics = compilation.Emit(output).Diagnostics;
        Diagnostic[] problems = diagnostics
            .Where(d => d.Severity == DiagnosticSeverity.Error || (d.Severity == DiagnosticSeverity.Warning && d.Id != "CS1701" && d.Id != "CS1702"))
            .ToArray();
        Assert.True(problems.Length == 0, $"{file}, csharp block {block}:\n{string.Join("\n", problems.Select(p => p.ToString()))}\n---\n{code}");
    }

    /// <summary>The framework's reference set (this runtime's assemblies) plus the two packages' assemblies.</summary>
    private static IEnumerable<MetadataReference> References()
    {
        string[] framework = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        return framework
            .Where(path => Path.GetFileName(path).StartsWith("System.", StringComparison.Ordinal)
                           || Path.GetFileName(path) is "mscorlib.dll" or "netstandard.dll" or "Microsoft.Win32.Primitives.dll")
            .Append(typeof(Loop).Assembly.Location)
            .Append(typeof(EventLoop.Libuv.LibuvLoopPolicy).Assembly.Location)
            .Distinct()
            .Select(path => MetadataReference.CreateFromFile(path));
    }
}
