#!/usr/bin/env bash
# The consumer-app check: pack EventLoop and EventLoop.Libuv into a local folder, build tests/consumer from those
# packages alone (a nuget.config with only that folder, a fresh packages folder, outside the repository so none of
# its Directory.Build.props apply), and run it on both policies. Prints one line per policy; exits non-zero on failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
version="0.0.0-consumer.$(date +%s)"

dotnet pack "$root/src/EventLoop.Libuv/EventLoop.Libuv.csproj" -c Release -o "$work/feed" -p:Version="$version" -warnaserror -v q -nologo >/dev/null
dotnet pack "$root/src/EventLoop/EventLoop.csproj" -c Release -o "$work/feed" -p:Version="$version" -warnaserror -v q -nologo >/dev/null

mkdir "$work/app"
cp "$root/tests/consumer/ConsumerApp.csproj" "$root/tests/consumer/Program.cs" "$work/app/"
cat > "$work/app/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$work/feed" />
  </packageSources>
</configuration>
XML

cd "$work/app"
dotnet restore --packages "$work/packages" -p:EventLoopVersion="$version" -v q -nologo >/dev/null
dotnet build -c Release --no-restore -p:EventLoopVersion="$version" -v q -nologo >/dev/null
for policy in managed libuv; do
  dotnet bin/Release/net10.0/ConsumerApp.dll "$policy"
done
